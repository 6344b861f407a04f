// CUDA driver API through dlopen("libcuda.so.1"), so the addon builds and
// loads on hosts without the driver. Only the handful of types and entry points
// used here are declared; their layout is fixed by the driver's stable ABI.
//
// Every call makes the device's primary context current on the calling thread
// (the JS thread or a libuv pool thread) before touching the driver.
#include <dlfcn.h>

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "regions.h"

namespace pm {

namespace {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
struct CUctx_st;
using CUcontext = CUctx_st*;
struct CUstream_st;
using CUstream = CUstream_st*;
struct CUevent_st;
using CUevent = CUevent_st*;
struct CUipcMemHandle {
  char reserved[64];
};

constexpr CUresult kSuccess = 0;
constexpr CUresult kErrorInvalidValue = 1;
constexpr CUresult kErrorOutOfMemory = 2;
constexpr CUresult kErrorNotInitialized = 3;
constexpr CUresult kErrorDeinitialized = 4;
constexpr CUresult kErrorNoDevice = 100;
constexpr CUresult kErrorInvalidDevice = 101;
constexpr CUresult kErrorInvalidContext = 201;
constexpr CUresult kErrorMapFailed = 205;
constexpr CUresult kErrorAlreadyMapped = 208;
constexpr CUresult kErrorOperatingSystem = 304;
constexpr CUresult kErrorInvalidHandle = 400;
constexpr CUresult kErrorIllegalAddress = 700;
constexpr CUresult kErrorHostMemoryAlreadyRegistered = 712;
constexpr CUresult kErrorHostMemoryNotRegistered = 713;

constexpr int kAttrComputeCapabilityMajor = 75;
constexpr int kAttrComputeCapabilityMinor = 76;
constexpr int kAttrMultiprocessorCount = 16;
constexpr unsigned kStreamNonBlocking = 0x1;
constexpr unsigned kEventDefault = 0x0;
constexpr unsigned kIpcLazyEnablePeerAccess = 0x1;
constexpr unsigned kHostRegisterPortable = 0x01;
constexpr unsigned kHostRegisterDeviceMap = 0x02;
constexpr unsigned kHostRegisterReadOnly = 0x08;

struct Driver {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDriverGetVersion)(int*);
  CUresult (*cuDeviceGetCount)(int*);
  CUresult (*cuDeviceGet)(CUdevice*, int);
  CUresult (*cuDeviceGetName)(char*, int, CUdevice);
  CUresult (*cuDeviceTotalMem)(size_t*, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice);
  CUresult (*cuDeviceGetPCIBusId)(char*, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuMemGetInfo)(size_t*, size_t*);
  CUresult (*cuMemAlloc)(CUdeviceptr*, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemAllocHost)(void**, size_t);
  CUresult (*cuMemFreeHost)(void*);
  CUresult (*cuMemHostRegister)(void*, size_t, unsigned);
  CUresult (*cuMemHostUnregister)(void*);
  CUresult (*cuIpcGetMemHandle)(CUipcMemHandle*, CUdeviceptr);
  CUresult (*cuIpcOpenMemHandle)(CUdeviceptr*, CUipcMemHandle, unsigned);
  CUresult (*cuIpcCloseMemHandle)(CUdeviceptr);
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void*, size_t, CUstream);
  CUresult (*cuMemcpyDtoHAsync)(void*, CUdeviceptr, size_t, CUstream);
  CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
  CUresult (*cuStreamCreate)(CUstream*, unsigned);
  CUresult (*cuStreamDestroy)(CUstream);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuEventCreate)(CUevent*, unsigned);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventElapsedTime)(float*, CUevent, CUevent);
  CUresult (*cuEventDestroy)(CUevent);
  CUresult (*cuGetErrorName)(CUresult, const char**);
  CUresult (*cuGetErrorString)(CUresult, const char**);
};

struct State {
  std::once_flag once;
  bool available = false;
  std::string reason;
  int driver_version = 0;
  int device_count = 0;
  Driver driver{};
  std::mutex mutex;
  std::vector<CUcontext> contexts;
};

// Never destroyed: the driver may still be used by pool threads at exit.
State& S() {
  static State* state = new State();
  return *state;
}

const Driver& D() { return S().driver; }

std::string ErrorName(CUresult result) {
  const char* name = nullptr;
  if (D().cuGetErrorName != nullptr && D().cuGetErrorName(result, &name) == kSuccess && name != nullptr) {
    return name;
  }
  return "CUDA_ERROR_" + std::to_string(result);
}

std::string CudaHint(CUresult result) {
  switch (result) {
    case kErrorInvalidValue:
      return "the driver rejected an argument: check the device pointer (from this process and not freed), "
             "the byte count (within both allocations) and the flags";
    case kErrorOutOfMemory:
      return "the device (or pinned host memory) is out of memory: free or spill GPU regions, or place the "
             "payload on a slower tier";
    case kErrorNotInitialized:
    case kErrorDeinitialized:
      return "the CUDA driver is not initialized or is shutting down: restart the process";
    case kErrorNoDevice:
      return "no CUDA device is visible: check nvidia-smi, CUDA_VISIBLE_DEVICES and the container's GPU access";
    case kErrorInvalidDevice:
      return "no such device ordinal: list devices with cuda.devices()";
    case kErrorInvalidContext:
    case kErrorInvalidHandle:
      return "the pointer or handle is not valid here: device pointers are per process and per device; an "
             "IPC handle must be opened in a process other than the one that allocated it, while that "
             "process is still alive";
    case kErrorMapFailed:
    case kErrorOperatingSystem:
      return "the driver could not map the memory: for IPC both processes must run on the same host with "
             "access to the same GPU (containers need hostIPC and the device), and the allocating process "
             "must still be alive";
    case kErrorAlreadyMapped:
      return "this IPC handle is already open in this process: reuse the pointer or close it first";
    case kErrorIllegalAddress:
      return "the CUDA context is corrupted by an earlier fault: restart the process";
    case kErrorHostMemoryAlreadyRegistered:
      return "this host range is already registered: unregister it first or reuse the registration";
    case kErrorHostMemoryNotRegistered:
      return "this host range is not registered: pass the same Buffer that was registered";
    default:
      return "see the CUDA driver API documentation for this error code";
  }
}

Failure CudaFailure(const char* call, CUresult result) {
  Failure f;
  f.code = ErrorName(result);
  const char* text = nullptr;
  std::string description;
  if (D().cuGetErrorString != nullptr && D().cuGetErrorString(result, &text) == kSuccess && text != nullptr) {
    description = std::string(" (") + text + ")";
  }
  f.message = std::string(call) + " failed: " + f.code + description + "; " + CudaHint(result);
  f.syscall = call;
  return f;
}

template <typename T>
bool Bind(void* lib, T* slot, const char* name, const char* fallback, std::string* missing) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr && fallback != nullptr) sym = dlsym(lib, fallback);
  if (sym == nullptr) {
    if (missing->empty()) *missing = name;
    return false;
  }
  *slot = reinterpret_cast<T>(sym);
  return true;
}

void Load() {
  State& s = S();
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    s.reason = std::string("could not load libcuda.so.1 (the NVIDIA driver library): ") +
               (err != nullptr ? err : "unknown error") +
               ". Install the NVIDIA driver or run on a GPU host; the GPU tier stays disabled.";
    return;
  }
  Driver& d = s.driver;
  std::string missing;
  Bind(lib, &d.cuInit, "cuInit", nullptr, &missing);
  Bind(lib, &d.cuDriverGetVersion, "cuDriverGetVersion", nullptr, &missing);
  Bind(lib, &d.cuDeviceGetCount, "cuDeviceGetCount", nullptr, &missing);
  Bind(lib, &d.cuDeviceGet, "cuDeviceGet", nullptr, &missing);
  Bind(lib, &d.cuDeviceGetName, "cuDeviceGetName", nullptr, &missing);
  Bind(lib, &d.cuDeviceTotalMem, "cuDeviceTotalMem_v2", nullptr, &missing);
  Bind(lib, &d.cuDeviceGetAttribute, "cuDeviceGetAttribute", nullptr, &missing);
  Bind(lib, &d.cuDeviceGetPCIBusId, "cuDeviceGetPCIBusId", nullptr, &missing);
  Bind(lib, &d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", nullptr, &missing);
  Bind(lib, &d.cuCtxSetCurrent, "cuCtxSetCurrent", nullptr, &missing);
  Bind(lib, &d.cuCtxSynchronize, "cuCtxSynchronize", nullptr, &missing);
  Bind(lib, &d.cuMemGetInfo, "cuMemGetInfo_v2", nullptr, &missing);
  Bind(lib, &d.cuMemAlloc, "cuMemAlloc_v2", nullptr, &missing);
  Bind(lib, &d.cuMemFree, "cuMemFree_v2", nullptr, &missing);
  Bind(lib, &d.cuMemAllocHost, "cuMemAllocHost_v2", nullptr, &missing);
  Bind(lib, &d.cuMemFreeHost, "cuMemFreeHost", nullptr, &missing);
  Bind(lib, &d.cuMemHostRegister, "cuMemHostRegister_v2", "cuMemHostRegister", &missing);
  Bind(lib, &d.cuMemHostUnregister, "cuMemHostUnregister", nullptr, &missing);
  Bind(lib, &d.cuIpcGetMemHandle, "cuIpcGetMemHandle", nullptr, &missing);
  Bind(lib, &d.cuIpcOpenMemHandle, "cuIpcOpenMemHandle_v2", "cuIpcOpenMemHandle", &missing);
  Bind(lib, &d.cuIpcCloseMemHandle, "cuIpcCloseMemHandle", nullptr, &missing);
  Bind(lib, &d.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", nullptr, &missing);
  Bind(lib, &d.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", nullptr, &missing);
  Bind(lib, &d.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2", nullptr, &missing);
  Bind(lib, &d.cuStreamCreate, "cuStreamCreate", nullptr, &missing);
  Bind(lib, &d.cuStreamDestroy, "cuStreamDestroy_v2", "cuStreamDestroy", &missing);
  Bind(lib, &d.cuStreamSynchronize, "cuStreamSynchronize", nullptr, &missing);
  Bind(lib, &d.cuEventCreate, "cuEventCreate", nullptr, &missing);
  Bind(lib, &d.cuEventRecord, "cuEventRecord", nullptr, &missing);
  Bind(lib, &d.cuEventSynchronize, "cuEventSynchronize", nullptr, &missing);
  Bind(lib, &d.cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime", &missing);
  Bind(lib, &d.cuEventDestroy, "cuEventDestroy_v2", "cuEventDestroy", &missing);
  Bind(lib, &d.cuGetErrorName, "cuGetErrorName", nullptr, &missing);
  Bind(lib, &d.cuGetErrorString, "cuGetErrorString", nullptr, &missing);
  if (!missing.empty()) {
    s.reason = "libcuda.so.1 loaded but lacks " + missing +
               ": the NVIDIA driver is too old; upgrade it (driver 525 or newer). The GPU tier stays disabled.";
    return;
  }
  CUresult r = d.cuInit(0);
  if (r != kSuccess) {
    s.reason = "libcuda.so.1 loaded but cuInit failed: " + ErrorName(r) + "; " + CudaHint(r) +
               ". The GPU tier stays disabled.";
    return;
  }
  d.cuDriverGetVersion(&s.driver_version);
  r = d.cuDeviceGetCount(&s.device_count);
  if (r != kSuccess || s.device_count <= 0) {
    s.reason = "libcuda.so.1 loaded but no CUDA device is visible: check nvidia-smi and CUDA_VISIBLE_DEVICES. "
               "The GPU tier stays disabled.";
    s.device_count = 0;
    return;
  }
  s.contexts.assign(static_cast<size_t>(s.device_count), nullptr);
  s.available = true;
  s.reason = "libcuda.so.1 loaded; " + std::to_string(s.device_count) + " device(s)";
}

bool Available() {
  State& s = S();
  std::call_once(s.once, Load);
  return s.available;
}

Failure Unavailable() {
  Failure f;
  f.code = "CUDA_UNAVAILABLE";
  f.message = "CUDA is not available: " + S().reason;
  return f;
}

// Makes the device's primary context current on this thread.
bool UseDevice(int device, Failure* failure) {
  if (!Available()) {
    *failure = Unavailable();
    return false;
  }
  State& s = S();
  if (device < 0 || device >= s.device_count) {
    failure->code = "CUDA_ERROR_INVALID_DEVICE";
    failure->message = "device " + std::to_string(device) + " does not exist (" + std::to_string(s.device_count) +
                       " visible): " + CudaHint(kErrorInvalidDevice);
    return false;
  }
  CUcontext ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    ctx = s.contexts[static_cast<size_t>(device)];
    if (ctx == nullptr) {
      CUdevice dev = 0;
      CUresult r = D().cuDeviceGet(&dev, device);
      if (r == kSuccess) r = D().cuDevicePrimaryCtxRetain(&ctx, dev);
      if (r != kSuccess) {
        *failure = CudaFailure("cuDevicePrimaryCtxRetain", r);
        return false;
      }
      s.contexts[static_cast<size_t>(device)] = ctx;
    }
  }
  CUresult r = D().cuCtxSetCurrent(ctx);
  if (r != kSuccess) {
    *failure = CudaFailure("cuCtxSetCurrent", r);
    return false;
  }
  return true;
}

bool UseDeviceOrThrow(Napi::Env env, int device) {
  Failure failure;
  if (UseDevice(device, &failure)) return true;
  Throw(env, failure);
  return false;
}

Napi::Value Check(Napi::Env env, const char* call, CUresult result) {
  if (result == kSuccess) return env.Undefined();
  return Throw(env, CudaFailure(call, result));
}

// ---- availability and devices ----

Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ok = Available();
  State& s = S();
  Napi::Object out = Napi::Object::New(env);
  out.Set("available", Napi::Boolean::New(env, ok));
  out.Set("reason", s.reason);
  out.Set("driverVersion", Napi::Number::New(env, s.driver_version));
  out.Set("deviceCount", Napi::Number::New(env, s.device_count));
  return out;
}

Napi::Value CudaDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Available()) return Throw(env, Unavailable());
  Napi::Array out = Napi::Array::New(env);
  for (int i = 0; i < S().device_count; ++i) {
    CUdevice dev = 0;
    CUresult r = D().cuDeviceGet(&dev, i);
    if (r != kSuccess) return Check(env, "cuDeviceGet", r);
    char name[256] = {0};
    char bus[64] = {0};
    size_t total = 0;
    int major = 0;
    int minor = 0;
    int sms = 0;
    if ((r = D().cuDeviceGetName(name, sizeof name - 1, dev)) != kSuccess) return Check(env, "cuDeviceGetName", r);
    if ((r = D().cuDeviceTotalMem(&total, dev)) != kSuccess) return Check(env, "cuDeviceTotalMem", r);
    D().cuDeviceGetAttribute(&major, kAttrComputeCapabilityMajor, dev);
    D().cuDeviceGetAttribute(&minor, kAttrComputeCapabilityMinor, dev);
    D().cuDeviceGetAttribute(&sms, kAttrMultiprocessorCount, dev);
    D().cuDeviceGetPCIBusId(bus, sizeof bus - 1, dev);
    Napi::Object d = Napi::Object::New(env);
    d.Set("ordinal", Napi::Number::New(env, i));
    d.Set("name", std::string(name));
    d.Set("totalMemory", SizeValue(env, total));
    d.Set("computeCapability", std::to_string(major) + "." + std::to_string(minor));
    d.Set("multiprocessors", Napi::Number::New(env, sms));
    d.Set("pciBusId", std::string(bus));
    out.Set(static_cast<uint32_t>(i), d);
  }
  return out;
}

Napi::Value CudaMemGetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  if (!ArgDevice(info, 0, &device) || !UseDeviceOrThrow(env, device)) return env.Undefined();
  size_t free_bytes = 0;
  size_t total = 0;
  CUresult r = D().cuMemGetInfo(&free_bytes, &total);
  if (r != kSuccess) return Check(env, "cuMemGetInfo", r);
  Napi::Object out = Napi::Object::New(env);
  out.Set("free", SizeValue(env, free_bytes));
  out.Set("total", SizeValue(env, total));
  return out;
}

// ---- device memory and IPC ----

Napi::Value CuMemAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint64_t size = 0;
  if (!ArgDevice(info, 0, &device) || !ArgSize(info, 1, "size", &size) || !UseDeviceOrThrow(env, device)) {
    return env.Undefined();
  }
  CUdeviceptr ptr = 0;
  CUresult r = D().cuMemAlloc(&ptr, static_cast<size_t>(size));
  if (r != kSuccess) return Check(env, "cuMemAlloc", r);
  return Napi::BigInt::New(env, static_cast<uint64_t>(ptr));
}

Napi::Value CuMemFree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint64_t ptr = 0;
  if (!ArgDevice(info, 0, &device) || !ArgDevicePointer(info, 1, "ptr", &ptr) || !UseDeviceOrThrow(env, device)) {
    return env.Undefined();
  }
  return Check(env, "cuMemFree", D().cuMemFree(static_cast<CUdeviceptr>(ptr)));
}

Napi::Value CuIpcGetMemHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint64_t ptr = 0;
  if (!ArgDevice(info, 0, &device) || !ArgDevicePointer(info, 1, "ptr", &ptr) || !UseDeviceOrThrow(env, device)) {
    return env.Undefined();
  }
  CUipcMemHandle handle;
  std::memset(&handle, 0, sizeof handle);
  CUresult r = D().cuIpcGetMemHandle(&handle, static_cast<CUdeviceptr>(ptr));
  if (r != kSuccess) return Check(env, "cuIpcGetMemHandle", r);
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(handle.reserved), sizeof handle);
}

Napi::Value CuIpcOpenMemHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint8_t* data = nullptr;
  size_t length = 0;
  if (!ArgDevice(info, 0, &device) || !ArgBytes(info, 1, "handle", &data, &length, nullptr)) return env.Undefined();
  if (length != sizeof(CUipcMemHandle)) {
    return Throw(env, "EINVAL",
                 "an IPC handle is exactly 64 bytes (got " + std::to_string(length) +
                     "): pass the Buffer from cuda.ipcGetHandle, decoded from the descriptor unchanged");
  }
  if (!UseDeviceOrThrow(env, device)) return env.Undefined();
  CUipcMemHandle handle;
  std::memcpy(handle.reserved, data, sizeof handle);
  CUdeviceptr ptr = 0;
  CUresult r = D().cuIpcOpenMemHandle(&ptr, handle, kIpcLazyEnablePeerAccess);
  if (r != kSuccess) return Check(env, "cuIpcOpenMemHandle", r);
  return Napi::BigInt::New(env, static_cast<uint64_t>(ptr));
}

Napi::Value CuIpcCloseMemHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint64_t ptr = 0;
  if (!ArgDevice(info, 0, &device) || !ArgDevicePointer(info, 1, "ptr", &ptr) || !UseDeviceOrThrow(env, device)) {
    return env.Undefined();
  }
  return Check(env, "cuIpcCloseMemHandle", D().cuIpcCloseMemHandle(static_cast<CUdeviceptr>(ptr)));
}

// ---- copies (always on a pool thread, on their own stream, timed with events) ----

enum class CopyKind { kHtoD, kDtoH, kDtoD };

class CopyWorker : public PromiseWorker {
 public:
  CopyWorker(Napi::Env env, CopyKind kind, int device, uint64_t dst, uint64_t src, uint8_t* host, size_t bytes,
             const Napi::Object* holder)
      : PromiseWorker(env, "pm:cudaCopy"),
        kind_(kind),
        device_(device),
        dst_(dst),
        src_(src),
        host_(host),
        bytes_(bytes),
        pin_(host, host != nullptr ? bytes : 0) {
    if (holder != nullptr) holder_ = Napi::Persistent(*holder);
  }

 protected:
  void Execute() override {
    if (!UseDevice(device_, &failure_)) return;
    const Driver& d = D();
    CUstream stream = nullptr;
    CUevent start = nullptr;
    CUevent stop = nullptr;
    CUresult r = d.cuStreamCreate(&stream, kStreamNonBlocking);
    if (r != kSuccess) {
      failure_ = CudaFailure("cuStreamCreate", r);
      return;
    }
    const char* call = "cuEventCreate";
    r = d.cuEventCreate(&start, kEventDefault);
    if (r == kSuccess) r = d.cuEventCreate(&stop, kEventDefault);
    auto t0 = std::chrono::steady_clock::now();
    if (r == kSuccess) {
      call = "cuEventRecord";
      r = d.cuEventRecord(start, stream);
    }
    if (r == kSuccess) {
      switch (kind_) {
        case CopyKind::kHtoD:
          call = "cuMemcpyHtoDAsync";
          r = d.cuMemcpyHtoDAsync(static_cast<CUdeviceptr>(dst_), host_, bytes_, stream);
          break;
        case CopyKind::kDtoH:
          call = "cuMemcpyDtoHAsync";
          r = d.cuMemcpyDtoHAsync(host_, static_cast<CUdeviceptr>(src_), bytes_, stream);
          break;
        case CopyKind::kDtoD:
          call = "cuMemcpyDtoDAsync";
          r = d.cuMemcpyDtoDAsync(static_cast<CUdeviceptr>(dst_), static_cast<CUdeviceptr>(src_), bytes_, stream);
          break;
      }
    }
    if (r == kSuccess) {
      call = "cuEventRecord";
      r = d.cuEventRecord(stop, stream);
    }
    if (r == kSuccess) {
      call = "cuStreamSynchronize";
      r = d.cuStreamSynchronize(stream);
    }
    wall_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r == kSuccess) {
      float ms = 0;
      call = "cuEventElapsedTime";
      r = d.cuEventElapsedTime(&ms, start, stop);
      device_ms_ = ms;
    }
    if (r != kSuccess) failure_ = CudaFailure(call, r);
    if (start != nullptr) d.cuEventDestroy(start);
    if (stop != nullptr) d.cuEventDestroy(stop);
    d.cuStreamDestroy(stream);
  }

  void Finish() override {
    pin_.Reset();
    if (!holder_.IsEmpty()) holder_.Reset();
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("bytes", SizeValue(env, bytes_));
    out.Set("deviceMs", Napi::Number::New(env, device_ms_));
    out.Set("wallMs", Napi::Number::New(env, wall_ms_));
    return out;
  }

 private:
  CopyKind kind_;
  int device_;
  uint64_t dst_;
  uint64_t src_;
  uint8_t* host_;
  size_t bytes_;
  RegionPin pin_;
  Napi::ObjectReference holder_;
  double device_ms_ = 0;
  double wall_ms_ = 0;
};

bool HostBytes(const Napi::CallbackInfo& info, size_t buffer_index, size_t bytes_index, uint8_t** data,
               size_t* bytes, Napi::Object* holder) {
  size_t length = 0;
  if (!ArgBytes(info, buffer_index, "host buffer", data, &length, holder)) return false;
  uint64_t requested = 0;
  bool present = false;
  if (!ArgOptionalSize(info, bytes_index, "bytes", &requested, &present)) return false;
  if (!present) requested = length;
  if (requested == 0) {
    Throw(info.Env(), "EINVAL", "nothing to copy: the host buffer is empty (released?) and no byte count was given");
    return false;
  }
  if (requested > length) {
    Throw(info.Env(), "EINVAL",
          "bytes (" + std::to_string(requested) + ") exceeds the host buffer (" + std::to_string(length) + " bytes)");
    return false;
  }
  *bytes = static_cast<size_t>(requested);
  return true;
}

// cuMemcpyHtoD(device, dst, src, bytes = src.length) -> Promise<{bytes, deviceMs, wallMs}>
Napi::Value CuMemcpyHtoD(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint64_t dst = 0;
  uint8_t* host = nullptr;
  size_t bytes = 0;
  Napi::Object holder;
  if (!ArgDevice(info, 0, &device) || !ArgDevicePointer(info, 1, "dst", &dst) ||
      !HostBytes(info, 2, 3, &host, &bytes, &holder)) {
    return env.Undefined();
  }
  if (!Available()) return Throw(env, Unavailable());
  return (new CopyWorker(env, CopyKind::kHtoD, device, dst, 0, host, bytes, &holder))->Start();
}

// cuMemcpyDtoH(device, dst, src, bytes = dst.length) -> Promise<{bytes, deviceMs, wallMs}>
Napi::Value CuMemcpyDtoH(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint64_t src = 0;
  uint8_t* host = nullptr;
  size_t bytes = 0;
  Napi::Object holder;
  if (!ArgDevice(info, 0, &device) || !HostBytes(info, 1, 3, &host, &bytes, &holder) ||
      !ArgDevicePointer(info, 2, "src", &src)) {
    return env.Undefined();
  }
  if (!Available()) return Throw(env, Unavailable());
  return (new CopyWorker(env, CopyKind::kDtoH, device, 0, src, host, bytes, &holder))->Start();
}

// cuMemcpyDtoD(device, dst, src, bytes) -> Promise<{bytes, deviceMs, wallMs}>
Napi::Value CuMemcpyDtoD(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint64_t dst = 0;
  uint64_t src = 0;
  uint64_t bytes = 0;
  if (!ArgDevice(info, 0, &device) || !ArgDevicePointer(info, 1, "dst", &dst) ||
      !ArgDevicePointer(info, 2, "src", &src) || !ArgSize(info, 3, "bytes", &bytes)) {
    return env.Undefined();
  }
  if (!Available()) return Throw(env, Unavailable());
  return (new CopyWorker(env, CopyKind::kDtoD, device, dst, src, nullptr, static_cast<size_t>(bytes), nullptr))
      ->Start();
}

// ---- pinned host memory ----

struct HostRegistration {
  napi_ref ref = nullptr;
  RegionPin* pin = nullptr;
  size_t length = 0;
  bool busy = false;  // a register/unregister is in flight
};

// Heap-allocated and never destroyed: no napi calls during static destruction.
std::map<uintptr_t, HostRegistration>& Registrations() {
  static auto* registrations = new std::map<uintptr_t, HostRegistration>();
  return *registrations;
}

void DropRegistration(napi_env env, uintptr_t key) {
  auto& regs = Registrations();
  auto it = regs.find(key);
  if (it == regs.end()) return;
  if (it->second.ref != nullptr) napi_delete_reference(env, it->second.ref);
  delete it->second.pin;
  regs.erase(it);
}

class HostRegisterWorker : public PromiseWorker {
 public:
  HostRegisterWorker(Napi::Env env, bool do_register, int device, uint8_t* data, size_t length, unsigned flags)
      : PromiseWorker(env, do_register ? "pm:cudaHostRegister" : "pm:cudaHostUnregister"),
        register_(do_register),
        device_(device),
        data_(data),
        length_(length),
        flags_(flags) {}

 protected:
  void Execute() override {
    if (!UseDevice(device_, &failure_)) return;
    CUresult r = register_ ? D().cuMemHostRegister(data_, length_, flags_) : D().cuMemHostUnregister(data_);
    if (r != kSuccess) failure_ = CudaFailure(register_ ? "cuMemHostRegister" : "cuMemHostUnregister", r);
  }

  void Finish() override {
    uintptr_t key = reinterpret_cast<uintptr_t>(data_);
    auto& regs = Registrations();
    auto it = regs.find(key);
    if (it == regs.end()) return;
    it->second.busy = false;
    // Keep the entry only while the memory is registered.
    if (register_ == failure_.failed()) DropRegistration(Env(), key);
  }

 private:
  bool register_;
  int device_;
  uint8_t* data_;
  size_t length_;
  unsigned flags_;
};

// cuMemHostRegister(device, bytes, {portable, deviceMap, readOnly}) -> Promise<void>
// Pins an existing host range (e.g. a shm mapping) for fast async copies. The
// Buffer is kept alive, and release() refuses, until cuMemHostUnregister.
Napi::Value CuMemHostRegister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint8_t* data = nullptr;
  size_t length = 0;
  Napi::Object holder;
  Napi::Object options;
  bool portable = true;
  bool device_map = false;
  bool read_only = false;
  if (!ArgDevice(info, 0, &device) || !ArgBytes(info, 1, "bytes", &data, &length, &holder) ||
      !ArgOptions(info, 2, &options) || !OptBool(env, options, "portable", true, &portable) ||
      !OptBool(env, options, "deviceMap", false, &device_map) ||
      !OptBool(env, options, "readOnly", false, &read_only)) {
    return env.Undefined();
  }
  if (length == 0) return Throw(env, "EINVAL", "cannot register an empty (or released) buffer");
  if (!Available()) return Throw(env, Unavailable());
  uintptr_t key = reinterpret_cast<uintptr_t>(data);
  auto& regs = Registrations();
  if (regs.count(key) != 0) {
    return Throw(env, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
                 "this buffer is already registered (or a registration is in flight): " +
                     CudaHint(kErrorHostMemoryAlreadyRegistered));
  }
  HostRegistration reg;
  napi_create_reference(env, holder, 1, &reg.ref);
  reg.pin = new RegionPin(data, length);
  reg.length = length;
  reg.busy = true;
  regs[key] = reg;
  unsigned flags = (portable ? kHostRegisterPortable : 0) | (device_map ? kHostRegisterDeviceMap : 0) |
                   (read_only ? kHostRegisterReadOnly : 0);
  return (new HostRegisterWorker(env, true, device, data, length, flags))->Start();
}

// cuMemHostUnregister(device, bytes) -> Promise<void>
Napi::Value CuMemHostUnregister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint8_t* data = nullptr;
  size_t length = 0;
  if (!ArgDevice(info, 0, &device) || !ArgBytes(info, 1, "bytes", &data, &length, nullptr)) return env.Undefined();
  auto& regs = Registrations();
  auto it = regs.find(reinterpret_cast<uintptr_t>(data));
  if (it == regs.end()) {
    return Throw(env, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
                 "this buffer is not registered: " + CudaHint(kErrorHostMemoryNotRegistered));
  }
  if (it->second.busy) return Throw(env, "EBUSY", "a registration change for this buffer is in flight: await it first");
  it->second.busy = true;
  return (new HostRegisterWorker(env, false, device, data, it->second.length, 0))->Start();
}

void FreeCudaHost(Region* region) {
  Failure ignored;
  if (region->base != nullptr && UseDevice(region->device, &ignored)) D().cuMemFreeHost(region->base);
  region->base = nullptr;
}

// cuMemAllocHost(device, size) -> Buffer of pinned host memory, freed by GC or release().
Napi::Value CuMemAllocHost(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  uint64_t size = 0;
  if (!ArgDevice(info, 0, &device) || !ArgSize(info, 1, "size", &size) || !UseDeviceOrThrow(env, device)) {
    return env.Undefined();
  }
  void* ptr = nullptr;
  CUresult r = D().cuMemAllocHost(&ptr, static_cast<size_t>(size));
  if (r != kSuccess) return Check(env, "cuMemAllocHost", r);
  Region* region = new Region();
  region->base = ptr;
  region->base_len = static_cast<size_t>(size);
  region->data = static_cast<uint8_t*>(ptr);
  region->length = static_cast<size_t>(size);
  region->device = device;
  region->free_fn = FreeCudaHost;
  region->kind = "cuda-host";
  return WrapRegion(env, region);
}

class SynchronizeWorker : public PromiseWorker {
 public:
  SynchronizeWorker(Napi::Env env, int device) : PromiseWorker(env, "pm:cudaSynchronize"), device_(device) {}

 protected:
  void Execute() override {
    if (!UseDevice(device_, &failure_)) return;
    CUresult r = D().cuCtxSynchronize();
    if (r != kSuccess) failure_ = CudaFailure("cuCtxSynchronize", r);
  }

 private:
  int device_;
};

Napi::Value CuCtxSynchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  if (!ArgDevice(info, 0, &device)) return env.Undefined();
  if (!Available()) return Throw(env, Unavailable());
  return (new SynchronizeWorker(env, device))->Start();
}

}  // namespace

void InitCuda(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable, "cudaAvailable"));
  exports.Set("cudaDevices", Napi::Function::New(env, CudaDevices, "cudaDevices"));
  exports.Set("cudaMemGetInfo", Napi::Function::New(env, CudaMemGetInfo, "cudaMemGetInfo"));
  exports.Set("cuMemAlloc", Napi::Function::New(env, CuMemAlloc, "cuMemAlloc"));
  exports.Set("cuMemFree", Napi::Function::New(env, CuMemFree, "cuMemFree"));
  exports.Set("cuIpcGetMemHandle", Napi::Function::New(env, CuIpcGetMemHandle, "cuIpcGetMemHandle"));
  exports.Set("cuIpcOpenMemHandle", Napi::Function::New(env, CuIpcOpenMemHandle, "cuIpcOpenMemHandle"));
  exports.Set("cuIpcCloseMemHandle", Napi::Function::New(env, CuIpcCloseMemHandle, "cuIpcCloseMemHandle"));
  exports.Set("cuMemcpyHtoD", Napi::Function::New(env, CuMemcpyHtoD, "cuMemcpyHtoD"));
  exports.Set("cuMemcpyDtoH", Napi::Function::New(env, CuMemcpyDtoH, "cuMemcpyDtoH"));
  exports.Set("cuMemcpyDtoD", Napi::Function::New(env, CuMemcpyDtoD, "cuMemcpyDtoD"));
  exports.Set("cuMemHostRegister", Napi::Function::New(env, CuMemHostRegister, "cuMemHostRegister"));
  exports.Set("cuMemHostUnregister", Napi::Function::New(env, CuMemHostUnregister, "cuMemHostUnregister"));
  exports.Set("cuMemAllocHost", Napi::Function::New(env, CuMemAllocHost, "cuMemAllocHost"));
  exports.Set("cuCtxSynchronize", Napi::Function::New(env, CuCtxSynchronize, "cuCtxSynchronize"));
}

}  // namespace pm
