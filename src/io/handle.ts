import { native, type NativePoller } from './native.js';

/** A file descriptor a device owns, and the uv_poll watcher reading it once started. */
export class FdHandle {
  poller: NativePoller | undefined;

  constructor(public fd: number) {}

  /** Stop and release the watcher, then close the fd; safe to call twice. */
  close(): void {
    if (this.poller) {
      this.poller.close();
      this.poller = undefined;
    }
    if (this.fd >= 0) {
      native().closeFd(this.fd);
      this.fd = -1;
    }
  }
}
