{
  "variables": {
    "vtep_uring%": "<!(test -f /usr/include/liburing.h && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "vtep_io",
      "sources": ["native/vtep_io.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "conditions": [
        ["vtep_uring==1", {"defines": ["VTEP_URING"], "libraries": ["-luring"]}]
      ]
    }
  ]
}
