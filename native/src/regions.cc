#include "regions.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

namespace pm {

namespace {

constexpr long kHugetlbfsMagic = 0x958458f6;

std::mutex g_mutex;
std::map<uintptr_t, Region*> g_regions;  // keyed by data address

Region* FindLocked(const uint8_t* data, size_t length) {
  auto it = g_regions.upper_bound(reinterpret_cast<uintptr_t>(data));
  if (it == g_regions.begin()) return nullptr;
  --it;
  Region* r = it->second;
  uintptr_t start = reinterpret_cast<uintptr_t>(r->data);
  uintptr_t p = reinterpret_cast<uintptr_t>(data);
  if (p < start || p - start > r->length || length > r->length - (p - start)) return nullptr;
  return r;
}

void FreeRegionLocked(Region* region) {
  g_regions.erase(reinterpret_cast<uintptr_t>(region->data));
  region->released = true;
  if (region->free_fn != nullptr) region->free_fn(region);
}

void FinalizeRegion(napi_env env, void* /*data*/, void* hint) {
  Region* region = static_cast<Region*>(hint);
  bool adjust = false;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!region->released) {
      FreeRegionLocked(region);
      adjust = true;
    }
  }
  if (adjust) {
    int64_t unused = 0;
    napi_adjust_external_memory(env, -static_cast<int64_t>(region->length), &unused);
  }
  delete region;
}

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// release(buffer): frees the region behind `buffer` now instead of at GC.
Napi::Value Release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* data = nullptr;
  size_t length = 0;
  Napi::Object holder;
  if (!ArgBytes(info, 0, "buffer", &data, &length, &holder)) return env.Undefined();
  Napi::Uint8Array bytes = holder.As<Napi::Uint8Array>();
  Napi::ArrayBuffer ab = bytes.ArrayBuffer();
  if (env.IsExceptionPending()) return env.Undefined();
  if (ab.IsDetached()) return Napi::Boolean::New(env, false);  // already released
  Region* region = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    region = FindLocked(static_cast<uint8_t*>(ab.Data()), 1);
    if (region == nullptr || region->data != ab.Data()) {
      return Throw(env, "EINVAL",
                   "release() takes a Buffer returned by mapShm, mapFile, allocAligned or cuda.allocHost; "
                   "other Buffers are freed by the garbage collector");
    }
    if (region->pins > 0) {
      return Throw(env, "EBUSY",
                   "the region is in use by " + std::to_string(region->pins) +
                       " pending operation(s) or CUDA host registration(s): await them / call "
                       "cuda.hostUnregister first, then release");
    }
  }
  // Detach before freeing so no JS view can reach the memory afterwards.
  napi_status status = napi_detach_arraybuffer(env, ab);
  if (status != napi_ok) {
    if (env.IsExceptionPending()) env.GetAndClearPendingException();
    return Throw(env, "EBUSY",
                 "this Buffer cannot be detached, so it is not safe to free it early; drop all references and "
                 "let the garbage collector free it");
  }
  size_t freed = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!region->released) {
      freed = region->length;
      FreeRegionLocked(region);
    }
  }
  if (freed > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(freed));
  return Napi::Boolean::New(env, freed > 0);
}

// regionStats(): live regions by kind, for leak checks and metrics.
Napi::Value RegionStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  size_t count = 0;
  uint64_t bytes = 0;
  std::map<std::string, std::pair<size_t, uint64_t>> by_kind;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& entry : g_regions) {
      ++count;
      bytes += entry.second->length;
      auto& k = by_kind[entry.second->kind];
      k.first++;
      k.second += entry.second->length;
    }
  }
  out.Set("count", SizeValue(env, count));
  out.Set("bytes", SizeValue(env, bytes));
  Napi::Object kinds = Napi::Object::New(env);
  for (const auto& k : by_kind) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("count", SizeValue(env, k.second.first));
    entry.Set("bytes", SizeValue(env, k.second.second));
    kinds.Set(k.first, entry);
  }
  out.Set("byKind", kinds);
  return out;
}

// allocAligned(size, {alignment, hugePages, prefault}): zeroed anonymous memory
// aligned to `alignment` (a power of two, at least the page size).
Napi::Value AllocAligned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t size = 0;
  Napi::Object options;
  if (!ArgSize(info, 0, "size", &size) || !ArgOptions(info, 1, &options)) return env.Undefined();
  uint64_t alignment = PageSize();
  bool has_alignment = false;
  bool huge = false;
  bool prefault = false;
  if (!OptSize(env, options, "alignment", &alignment, &has_alignment) ||
      !OptBool(env, options, "hugePages", false, &huge) || !OptBool(env, options, "prefault", false, &prefault)) {
    return env.Undefined();
  }
  if (!has_alignment) alignment = huge ? (2u << 20) : PageSize();
  if ((alignment & (alignment - 1)) != 0 || alignment < PageSize() || alignment > (1u << 30)) {
    return Throw(env, "EINVAL", "alignment must be a power of two between the page size and 1 GiB");
  }
  size_t page = PageSize();
  size_t length = static_cast<size_t>((size + page - 1) / page * page);
  size_t reserve = length + (alignment > page ? alignment : 0);
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | (prefault ? MAP_POPULATE : 0);
  void* raw = mmap(nullptr, reserve, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (raw == MAP_FAILED) {
    return Throw(env, SysFailure("mmap", errno, "(anonymous, " + std::to_string(size) + " bytes)", ""));
  }
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + alignment - 1) & ~(static_cast<uintptr_t>(alignment) - 1);
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t end = start + reserve;
  if (end > aligned + length) munmap(reinterpret_cast<void*>(aligned + length), end - (aligned + length));
  if (huge) madvise(reinterpret_cast<void*>(aligned), length, MADV_HUGEPAGE);
  Region* region = new Region();
  region->base = reinterpret_cast<void*>(aligned);
  region->base_len = length;
  region->data = reinterpret_cast<uint8_t*>(aligned);
  region->length = static_cast<size_t>(size);
  region->free_fn = MunmapRegion;
  region->kind = "aligned";
  return WrapRegion(env, region);
}

}  // namespace

void MunmapRegion(Region* region) {
  if (region->base != nullptr) munmap(region->base, region->base_len);
  region->base = nullptr;
}

Napi::Value WrapRegion(Napi::Env env, Region* region) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_regions[reinterpret_cast<uintptr_t>(region->data)] = region;
  }
  napi_value result = nullptr;
  napi_status status =
      napi_create_external_buffer(env, region->length, region->data, FinalizeRegion, region, &result);
  if (status != napi_ok) {
    if (env.IsExceptionPending()) env.GetAndClearPendingException();
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      FreeRegionLocked(region);
    }
    size_t length = region->length;
    delete region;
    return Throw(env, "EINVAL",
                 "could not expose " + std::to_string(length) +
                     " bytes as a Buffer (larger than buffer.constants.MAX_LENGTH?): map a smaller window "
                     "with the offset/length options");
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(region->length));
  return Napi::Value(env, result);
}

RegionPin::RegionPin(const uint8_t* data, size_t length) {
  std::lock_guard<std::mutex> lock(g_mutex);
  region_ = FindLocked(data, length);
  if (region_ != nullptr) region_->pins++;
}

RegionPin::~RegionPin() { Reset(); }

void RegionPin::Reset() {
  if (region_ == nullptr) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  region_->pins--;
  region_ = nullptr;
}

bool ParseMapOptions(Napi::Env env, const Napi::Object& options, MapRequest* out) {
  bool has_offset = false;
  return OptBool(env, options, "writable", false, &out->writable) &&
         OptBool(env, options, "copyOnWrite", false, &out->copy_on_write) &&
         OptSize(env, options, "offset", &out->offset, &has_offset, true) &&
         OptSize(env, options, "length", &out->length, &out->has_length) &&
         OptBool(env, options, "prefault", false, &out->prefault) &&
         OptBool(env, options, "hugePages", false, &out->huge_pages);
}

Napi::Value MapFd(Napi::Env env, int fd, const MapRequest& request, const std::string& kind,
                  const std::string& label) {
  struct stat st;
  if (fstat(fd, &st) != 0) return Throw(env, SysFailure("fstat", errno, label, ""));
  if (!S_ISREG(st.st_mode)) return Throw(env, "EINVAL", label + " is not a regular file and cannot be mapped");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  size_t page = PageSize();
  struct statfs sfs;
  if (fstatfs(fd, &sfs) == 0 && static_cast<long>(sfs.f_type) == kHugetlbfsMagic && sfs.f_bsize > 0) {
    page = static_cast<size_t>(sfs.f_bsize);
  }
  if (size == 0) {
    return Throw(env, "EINVAL", label + " is empty (0 bytes): resize it before mapping");
  }
  if (request.offset >= size) {
    return Throw(env, "EINVAL",
                 "offset " + std::to_string(request.offset) + " is beyond the end of " + label + " (" +
                     std::to_string(size) + " bytes)");
  }
  uint64_t length = request.has_length ? request.length : size - request.offset;
  // Touching bytes past the end of the file raises SIGBUS, so refuse up front.
  if (length > size - request.offset) {
    return Throw(env, "EINVAL",
                 "offset+length (" + std::to_string(request.offset + length) + ") is beyond the end of " + label +
                     " (" + std::to_string(size) + " bytes): resize it first or map a smaller window");
  }
  if (request.writable && request.copy_on_write) {
    return Throw(env, "EINVAL", "writable and copyOnWrite are exclusive: pick one");
  }
  uint64_t aligned_offset = request.offset / page * page;
  uint64_t delta = request.offset - aligned_offset;
  uint64_t map_len = (delta + length + page - 1) / page * page;
  int prot = PROT_READ | ((request.writable || request.copy_on_write) ? PROT_WRITE : 0);
  int flags = (request.copy_on_write ? MAP_PRIVATE : MAP_SHARED) | (request.prefault ? MAP_POPULATE : 0);
  void* base = mmap(nullptr, static_cast<size_t>(map_len), prot, flags, fd, static_cast<off_t>(aligned_offset));
  if (base == MAP_FAILED) {
    int err = errno;
    std::string hint;
    if (err == EACCES) hint = "the region was opened read-only or the mode forbids writing: map it read-only";
    if (err == ENOMEM) hint = "not enough address space or memory: map a smaller window with offset/length";
    return Throw(env, SysFailure("mmap", err, label, hint));
  }
  if (request.huge_pages) madvise(base, static_cast<size_t>(map_len), MADV_HUGEPAGE);
  Region* region = new Region();
  region->base = base;
  region->base_len = static_cast<size_t>(map_len);
  region->data = static_cast<uint8_t*>(base) + delta;
  region->length = static_cast<size_t>(length);
  region->free_fn = MunmapRegion;
  region->kind = kind;
  region->label = label;
  return WrapRegion(env, region);
}

void InitRegions(Napi::Env env, Napi::Object exports) {
  exports.Set("release", Napi::Function::New(env, Release, "release"));
  exports.Set("regionStats", Napi::Function::New(env, RegionStats, "regionStats"));
  exports.Set("allocAligned", Napi::Function::New(env, AllocAligned, "allocAligned"));
}

}  // namespace pm
