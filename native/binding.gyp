{
  "targets": [
    {
      "target_name": "pm_native",
      "sources": [
        "src/addon.cc",
        "src/common.cc",
        "src/regions.cc",
        "src/shm.cc",
        "src/file.cc",
        "src/hash.cc",
        "src/checksum.cc",
        "src/cuda.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "libraries": ["-ldl", "-lrt"]
    }
  ]
}
