#include "common.h"

#include <cerrno>
#include <cmath>
#include <cstring>

namespace pm {

std::string ErrnoName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
#else
  switch (err) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOSPC: return "ENOSPC";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EBUSY: return "EBUSY";
    case EISDIR: return "EISDIR";
    case ENOTDIR: return "ENOTDIR";
    case EMFILE: return "EMFILE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    default: break;
  }
#endif
  return "EIO";
}

std::string DefaultHint(int err) {
  switch (err) {
    case ENOENT:
      return "it does not exist: check the name/path, or create it first";
    case EEXIST:
      return "it already exists: pick another name, or unlink the stale one if no process uses it";
    case EACCES:
    case EPERM:
      return "permission denied: check the owner and mode (regions are created 0600 for their owner) or run "
             "as the owning user";
    case ENOSPC:
      return "no space left: free space on that filesystem (for /dev/shm raise the tmpfs size, e.g. "
             "docker --shm-size or a larger mount) or use a smaller region";
    case ENOMEM:
      return "out of memory or address space: unmap unused regions or map a smaller window";
    case EMFILE:
    case ENFILE:
      return "too many open files: raise the file descriptor limit (ulimit -n)";
    case EISDIR:
      return "it is a directory: pass a regular file path";
    case ENAMETOOLONG:
      return "the name is too long: use a shorter name";
    case EROFS:
      return "the filesystem is read-only: use a writable directory";
    case EFBIG:
      return "the size exceeds what this filesystem allows";
    case EBUSY:
      return "it is in use: wait for pending operations, then retry";
    default:
      return "see the errno code for details";
  }
}

Failure SysFailure(const char* syscall, int err, const std::string& subject, const std::string& hint) {
  Failure f;
  f.code = ErrnoName(err);
  f.syscall = syscall;
  f.message = std::string(syscall) + " " + subject + " failed: " + std::strerror(err) + " (" + f.code +
              "); " + (hint.empty() ? DefaultHint(err) : hint);
  return f;
}

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message,
                      const std::string& syscall) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  if (!syscall.empty()) error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

Napi::Error MakeError(Napi::Env env, const Failure& failure) {
  return MakeError(env, failure.code, failure.message, failure.syscall);
}

Napi::Value Throw(Napi::Env env, const std::string& code, const std::string& message) {
  MakeError(env, code, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value Throw(Napi::Env env, const Failure& failure) {
  MakeError(env, failure).ThrowAsJavaScriptException();
  return env.Undefined();
}

namespace {

bool Invalid(Napi::Env env, const std::string& message) {
  Throw(env, "EINVAL", message);
  return false;
}

bool ToSize(Napi::Env env, const Napi::Value& value, const std::string& what, uint64_t* out, bool allowZero) {
  if (value.IsBigInt()) {
    bool lossless = false;
    uint64_t v = value.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) return Invalid(env, what + " must be a non-negative integer below 2^64");
    if (v > kMaxSafeInteger) return Invalid(env, what + " must be at most 2^53-1 bytes");
    if (v == 0 && !allowZero) return Invalid(env, what + " must be greater than 0");
    *out = v;
    return true;
  }
  if (!value.IsNumber()) return Invalid(env, what + " must be a number");
  double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0 || std::floor(d) != d || d > static_cast<double>(kMaxSafeInteger)) {
    return Invalid(env, what + " must be a non-negative safe integer");
  }
  if (d == 0 && !allowZero) return Invalid(env, what + " must be greater than 0");
  *out = static_cast<uint64_t>(d);
  return true;
}

}  // namespace

bool ArgString(const Napi::CallbackInfo& info, size_t index, const char* what, std::string* out) {
  if (info.Length() <= index || !info[index].IsString()) {
    return Invalid(info.Env(), std::string(what) + " must be a string");
  }
  *out = info[index].As<Napi::String>().Utf8Value();
  if (out->find('\0') != std::string::npos) {
    return Invalid(info.Env(), std::string(what) + " must not contain NUL characters");
  }
  return true;
}

bool ArgSize(const Napi::CallbackInfo& info, size_t index, const char* what, uint64_t* out, bool allowZero) {
  if (info.Length() <= index) return Invalid(info.Env(), std::string(what) + " is required");
  return ToSize(info.Env(), info[index], what, out, allowZero);
}

bool ArgOptionalSize(const Napi::CallbackInfo& info, size_t index, const char* what, uint64_t* out,
                     bool* present, bool allowZero) {
  *present = false;
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return true;
  *present = true;
  return ToSize(info.Env(), info[index], what, out, allowZero);
}

bool ArgBool(const Napi::CallbackInfo& info, size_t index, const char* what, bool fallback, bool* out) {
  if (info.Length() <= index || info[index].IsUndefined()) {
    *out = fallback;
    return true;
  }
  if (!info[index].IsBoolean()) return Invalid(info.Env(), std::string(what) + " must be a boolean");
  *out = info[index].As<Napi::Boolean>().Value();
  return true;
}

bool ArgBytes(const Napi::CallbackInfo& info, size_t index, const char* what, uint8_t** data, size_t* length,
              Napi::Object* holder) {
  if (info.Length() <= index || !info[index].IsTypedArray()) {
    return Invalid(info.Env(), std::string(what) + " must be a Buffer or Uint8Array");
  }
  Napi::TypedArray typed = info[index].As<Napi::TypedArray>();
  if (typed.TypedArrayType() != napi_uint8_array) {
    return Invalid(info.Env(), std::string(what) + " must be a Buffer or Uint8Array");
  }
  Napi::Uint8Array bytes = typed.As<Napi::Uint8Array>();
  *data = bytes.Data();
  *length = bytes.ByteLength();
  if (holder != nullptr) *holder = bytes;
  return true;
}

bool ArgDevicePointer(const Napi::CallbackInfo& info, size_t index, const char* what, uint64_t* out) {
  if (info.Length() <= index || !info[index].IsBigInt()) {
    return Invalid(info.Env(), std::string(what) + " must be a bigint device pointer (from cuda.alloc or "
                                                   "cuda.ipcOpenHandle)");
  }
  bool lossless = false;
  *out = info[index].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless || *out == 0) return Invalid(info.Env(), std::string(what) + " is not a valid device pointer");
  return true;
}

bool ArgDevice(const Napi::CallbackInfo& info, size_t index, int* out) {
  uint64_t v = 0;
  if (info.Length() <= index || !info[index].IsNumber()) {
    return Invalid(info.Env(), "device must be a device ordinal (0, 1, ...)");
  }
  if (!ToSize(info.Env(), info[index], "device", &v, true)) return false;
  if (v > 1024) return Invalid(info.Env(), "device ordinal is out of range: list devices with cuda.devices()");
  *out = static_cast<int>(v);
  return true;
}

bool ArgOptions(const Napi::CallbackInfo& info, size_t index, Napi::Object* out) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) {
    *out = Napi::Object::New(info.Env());
    return true;
  }
  if (!info[index].IsObject()) return Invalid(info.Env(), "options must be an object");
  *out = info[index].As<Napi::Object>();
  return true;
}

bool OptBool(Napi::Env env, const Napi::Object& obj, const char* key, bool fallback, bool* out) {
  Napi::Value v = obj.Get(key);
  if (env.IsExceptionPending()) return false;
  if (v.IsUndefined()) {
    *out = fallback;
    return true;
  }
  if (!v.IsBoolean()) return Invalid(env, std::string("option ") + key + " must be a boolean");
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

bool OptSize(Napi::Env env, const Napi::Object& obj, const char* key, uint64_t* out, bool* present,
             bool allowZero) {
  Napi::Value v = obj.Get(key);
  if (env.IsExceptionPending()) return false;
  *present = false;
  if (v.IsUndefined()) return true;
  *present = true;
  return ToSize(env, v, std::string("option ") + key, out, allowZero);
}

bool OptMode(Napi::Env env, const Napi::Object& obj, const char* key, unsigned fallback, unsigned* out) {
  uint64_t v = 0;
  bool present = false;
  if (!OptSize(env, obj, key, &v, &present, true)) return false;
  if (!present) {
    *out = fallback;
    return true;
  }
  if (v > 07777) return Invalid(env, std::string("option ") + key + " must be a file mode such as 0o600");
  *out = static_cast<unsigned>(v);
  return true;
}

bool OptString(Napi::Env env, const Napi::Object& obj, const char* key, std::string* out, bool* present) {
  Napi::Value v = obj.Get(key);
  if (env.IsExceptionPending()) return false;
  *present = false;
  if (v.IsUndefined()) return true;
  if (!v.IsString()) return Invalid(env, std::string("option ") + key + " must be a string");
  *present = true;
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Finish();
  if (failure_.failed()) {
    deferred_.Reject(MakeError(env, failure_).Value());
    return;
  }
  Napi::Value value = Result(env);
  if (env.IsExceptionPending()) {
    deferred_.Reject(env.GetAndClearPendingException().Value());
    return;
  }
  deferred_.Resolve(value);
}

void PromiseWorker::OnError(const Napi::Error& error) {
  Napi::HandleScope scope(Env());
  Finish();
  deferred_.Reject(error.Value());
}

}  // namespace pm
