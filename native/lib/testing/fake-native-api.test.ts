import { describe, expect, it } from "vitest";
import { nativeApiContract, thrownCode } from "../native-api.contract.ts";
import { createFakeHost, createFakeNativeApi } from "./fake-native-api.ts";

nativeApiContract("fake", () => createFakeNativeApi());

describe("fake CUDA", () => {
  it("is unavailable unless asked for", () => {
    const api = createFakeNativeApi();
    expect(api.cuda.availability().available).toBe(false);
    expect(thrownCode(() => api.cuda.devices())).toBe("CUDA_UNAVAILABLE");
  });

  it("shares device memory between instances through IPC handles, like two processes", async () => {
    const host = createFakeHost();
    const agent = createFakeNativeApi({ host, cuda: { devices: 1 } });
    const client = createFakeNativeApi({ host, cuda: { devices: 1 } });
    const ptr = agent.cuda.alloc(0, 1 << 20);
    await agent.cuda.copyHtoD(0, ptr, Buffer.alloc(1 << 20, 5));
    const handle = agent.cuda.ipcGetHandle(0, ptr);
    expect(handle.length).toBe(64);
    expect(thrownCode(() => agent.cuda.ipcOpenHandle(0, handle))).toBe("CUDA_ERROR_INVALID_CONTEXT");

    const imported = client.cuda.ipcOpenHandle(0, handle);
    const out = client.cuda.allocHost(0, 1 << 20);
    await expect(client.cuda.copyDtoH(0, out.bytes, imported)).resolves.toMatchObject({ bytes: 1 << 20 });
    expect(out.bytes.every((b) => b === 5)).toBe(true);
    // An agent pointer means nothing in the client process.
    await expect(client.cuda.copyDtoH(0, out.bytes, ptr)).rejects.toMatchObject({
      code: "CUDA_ERROR_INVALID_VALUE",
    });
    client.cuda.ipcCloseHandle(0, imported);
    agent.cuda.free(0, ptr);
    expect(thrownCode(() => client.cuda.ipcOpenHandle(0, handle))).toBe("CUDA_ERROR_MAP_FAILED");
  });

  it("pins registered buffers against release until unregistered", async () => {
    const api = createFakeNativeApi({ cuda: {} });
    const staging = api.allocAligned(4096);
    await api.cuda.hostRegister(0, staging.bytes);
    await expect(api.cuda.hostRegister(0, staging.bytes)).rejects.toMatchObject({
      code: "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
    });
    expect(thrownCode(() => staging.release())).toBe("EBUSY");
    await api.cuda.hostUnregister(0, staging.bytes);
    staging.release();
    expect(staging.released).toBe(true);
  });
});
