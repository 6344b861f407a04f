import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// infra/dev/services.sh against the real services: it is idempotent, prints the settings it used,
// and the S3 endpoint it sets up checks signatures (a tampered presigned URL is refused).

const run = promisify(execFile);
const repo = fileURLToPath(new URL("../..", import.meta.url));

async function servicesScript() {
  const started = performance.now();
  // A first run on a bare machine installs packages; later runs only probe.
  const { stdout, stderr } = await run("bash", ["infra/dev/services.sh"], { cwd: repo, timeout: 300_000 });
  return { stdout, stderr, seconds: (performance.now() - started) / 1000 };
}

function exportsOf(stdout: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const m = line.match(/^export (PM_\w+)=(.*)$/);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

describe("infra/dev/services.sh", () => {
  let env: Record<string, string>;
  let s3: S3Client;
  const key = `services-script-test/${randomUUID()}.txt`;
  const body = `presign check ${key}`;

  beforeAll(async () => {
    env = exportsOf((await servicesScript()).stdout);
    s3 = new S3Client({
      endpoint: env.PM_S3_ENDPOINT!,
      region: env.PM_S3_REGION!,
      forcePathStyle: env.PM_S3_FORCE_PATH_STYLE === "true",
      credentials: { accessKeyId: env.PM_S3_ACCESS_KEY_ID!, secretAccessKey: env.PM_S3_SECRET_ACCESS_KEY! },
    });
  }, 300_000);

  afterAll(async () => {
    await s3?.send(new DeleteObjectCommand({ Bucket: env.PM_S3_TEST_BUCKET!, Key: key }));
    s3?.destroy();
  });

  it("prints the settings it used as export lines", () => {
    expect(env).toMatchObject({
      PM_TEST_DATABASE_URL: "postgres://postgres@127.0.0.1:5432/test",
      PM_REDIS_URL: "redis://127.0.0.1:6379",
      PM_S3_ENDPOINT: "http://127.0.0.1:9000",
      PM_S3_REGION: "us-east-1",
      PM_S3_ACCESS_KEY_ID: "test:tester",
      PM_S3_SECRET_ACCESS_KEY: "testing",
      PM_S3_BUCKET: "payload-manager",
      PM_S3_TEST_BUCKET: "payload-manager-test",
    });
  });

  it("does nothing but probe when everything already runs", async () => {
    const again = await servicesScript();
    expect(exportsOf(again.stdout)).toEqual(env);
    expect(again.stderr).not.toMatch(/installing|starting|creat|building/i);
    expect(again.seconds).toBeLessThan(10);
  });

  it("serves the Swift healthcheck", async () => {
    const res = await fetch(`${env.PM_S3_ENDPOINT}/healthcheck`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("OK");
  });

  it("honours a presigned GET and refuses it once its signature is tampered with", async () => {
    await s3.send(new PutObjectCommand({ Bucket: env.PM_S3_TEST_BUCKET!, Key: key, Body: body }));
    const url = new URL(
      await getSignedUrl(s3, new GetObjectCommand({ Bucket: env.PM_S3_TEST_BUCKET!, Key: key }), {
        expiresIn: 60,
      }),
    );

    const ok = await fetch(url);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe(body);

    const signature = url.searchParams.get("X-Amz-Signature")!;
    expect(signature).toMatch(/^[0-9a-f]{64}$/);
    const last = signature.at(-1) === "0" ? "1" : "0";
    url.searchParams.set("X-Amz-Signature", signature.slice(0, -1) + last);
    const tampered = await fetch(url);
    expect(tampered.status).toBe(403);
    expect(await tampered.text()).toContain("SignatureDoesNotMatch");
  });
});
