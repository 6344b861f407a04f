// Shared helpers for the pm_native addon: JS errors with a string `code`,
// argument validation, and a Promise-returning AsyncWorker base.
//
// The addon is built with NAPI_DISABLE_CPP_EXCEPTIONS and -fno-exceptions:
// every failure is reported as a JS Error whose `code` is a string such as
// "ENOENT", "EINVAL" or "CUDA_ERROR_OUT_OF_MEMORY", and whose message says what
// to do next. Helpers that can fail return false after scheduling the JS
// exception, so callers simply `return env.Undefined()`.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace pm {

// Largest integer a JS number carries exactly; sizes above it are rejected.
constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;

// A failure that happened off the JS thread, turned into a JS Error later.
struct Failure {
  std::string code;
  std::string message;
  std::string syscall;
  bool failed() const { return !code.empty(); }
};

// Symbolic errno name ("ENOENT"); "EIO" style fallback for unknown values.
std::string ErrnoName(int err);

// A Failure for a failed system call, with `hint` appended to the message.
Failure SysFailure(const char* syscall, int err, const std::string& subject, const std::string& hint);

// Hint that fits the usual errno values of file and shm operations.
std::string DefaultHint(int err);

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message,
                      const std::string& syscall = std::string());
Napi::Error MakeError(Napi::Env env, const Failure& failure);

// Throws a JS error and returns undefined, for `return Throw(...)` in bindings.
Napi::Value Throw(Napi::Env env, const std::string& code, const std::string& message);
Napi::Value Throw(Napi::Env env, const Failure& failure);

// ---- argument helpers (throw EINVAL and return false on bad input) ----

bool ArgString(const Napi::CallbackInfo& info, size_t index, const char* what, std::string* out);
// A positive (or, with allowZero, non-negative) integer given as number or bigint.
bool ArgSize(const Napi::CallbackInfo& info, size_t index, const char* what, uint64_t* out,
             bool allowZero = false);
bool ArgOptionalSize(const Napi::CallbackInfo& info, size_t index, const char* what, uint64_t* out,
                     bool* present, bool allowZero = false);
bool ArgBool(const Napi::CallbackInfo& info, size_t index, const char* what, bool fallback, bool* out);
bool ArgBytes(const Napi::CallbackInfo& info, size_t index, const char* what, uint8_t** data, size_t* length,
              Napi::Object* holder);
bool ArgDevicePointer(const Napi::CallbackInfo& info, size_t index, const char* what, uint64_t* out);
bool ArgDevice(const Napi::CallbackInfo& info, size_t index, int* out);
// Options object at `index`: undefined/null gives an empty object.
bool ArgOptions(const Napi::CallbackInfo& info, size_t index, Napi::Object* out);

bool OptBool(Napi::Env env, const Napi::Object& obj, const char* key, bool fallback, bool* out);
bool OptSize(Napi::Env env, const Napi::Object& obj, const char* key, uint64_t* out, bool* present,
             bool allowZero = false);
bool OptMode(Napi::Env env, const Napi::Object& obj, const char* key, unsigned fallback, unsigned* out);
bool OptString(Napi::Env env, const Napi::Object& obj, const char* key, std::string* out, bool* present);

// A JS number for a size (exact up to 2^53).
inline Napi::Value SizeValue(Napi::Env env, uint64_t value) {
  return Napi::Number::New(env, static_cast<double>(value));
}

// Runs Execute() on the libuv pool and settles a Promise on the JS thread.
// Subclasses set failure_ in Execute() and build the resolved value in Result().
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Start() {
    Queue();
    return deferred_.Promise();
  }

 protected:
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  // Runs on the JS thread before settling, success or not (release pins here).
  virtual void Finish() {}

  Failure failure_;

 private:
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

  Napi::Promise::Deferred deferred_;
};

}  // namespace pm
