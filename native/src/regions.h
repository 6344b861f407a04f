// External memory handed to JS as Buffers: mmap'd shm/file windows, aligned
// anonymous staging memory, and CUDA pinned host memory.
//
// Every region is registered here so that
//  - the Buffer's finalizer frees it exactly once (munmap / cuMemFreeHost),
//  - release(buffer) can free it early: the ArrayBuffer is detached first, so
//    every view of it becomes zero-length and no JS code can touch freed memory,
//  - async work (checksums, CUDA copies, host registration) can pin a region so
//    that an early release fails with EBUSY instead of pulling memory from under
//    a worker thread.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common.h"

namespace pm {

struct Region;
using RegionFreeFn = void (*)(Region*);

struct Region {
  void* base = nullptr;   // what was allocated / mapped
  size_t base_len = 0;
  uint8_t* data = nullptr;  // what JS sees
  size_t length = 0;
  RegionFreeFn free_fn = nullptr;
  int device = -1;  // CUDA device for pinned host memory
  int pins = 0;
  bool released = false;
  std::string kind;   // "shm", "file", "aligned", "cuda-host"
  std::string label;  // shm name or path, for diagnostics
};

// Frees an mmap'd region.
void MunmapRegion(Region* region);

// Registers `region` and returns a Buffer over [data, data+length) whose
// finalizer frees it. On failure the region is freed and a JS error is pending.
Napi::Value WrapRegion(Napi::Env env, Region* region);

// Pins the addon region containing [data, data+length), if any. The pin blocks
// release(); it must be dropped on the JS thread.
class RegionPin {
 public:
  RegionPin() = default;
  RegionPin(const uint8_t* data, size_t length);
  ~RegionPin();
  RegionPin(const RegionPin&) = delete;
  RegionPin& operator=(const RegionPin&) = delete;
  void Reset();
  bool pinned() const { return region_ != nullptr; }

 private:
  Region* region_ = nullptr;
};

struct MapRequest {
  bool writable = false;
  bool copy_on_write = false;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool has_length = false;
  bool prefault = false;
  bool huge_pages = false;
};

bool ParseMapOptions(Napi::Env env, const Napi::Object& options, MapRequest* out);

// mmap()s a window of an open regular file (shm segment, tmpfs/hugetlbfs/disk
// file) and returns it as a Buffer. The caller keeps ownership of fd.
Napi::Value MapFd(Napi::Env env, int fd, const MapRequest& request, const std::string& kind,
                  const std::string& label);

void InitRegions(Napi::Env env, Napi::Object exports);

}  // namespace pm
