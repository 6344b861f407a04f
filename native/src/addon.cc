// pm_native: shared memory, file regions, checksums and the CUDA driver API for
// the tier agent and the client SDK. See lib/index.ts for the typed facade.
#include <napi.h>

namespace pm {
void InitRegions(Napi::Env env, Napi::Object exports);
void InitShm(Napi::Env env, Napi::Object exports);
void InitFile(Napi::Env env, Napi::Object exports);
void InitChecksum(Napi::Env env, Napi::Object exports);
void InitCuda(Napi::Env env, Napi::Object exports);
}  // namespace pm

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  pm::InitRegions(env, exports);
  pm::InitShm(env, exports);
  pm::InitFile(env, exports);
  pm::InitChecksum(env, exports);
  pm::InitCuda(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 2));
  return exports;
}

}  // namespace

NODE_API_MODULE(pm_native, Init)
