import { CoreV1Api } from "@kubernetes/client-node";
import { describe, expect, inject, it, onTestFinished } from "vitest";
import { KUBE_VERSION } from "./control-plane.ts";
import { applyYaml, createTestNamespace, kubeClient, kubectl } from "./kubectl.ts";

interface VersionInfo {
  clientVersion?: { gitVersion: string };
  serverVersion?: { gitVersion: string };
}

describe("test control plane", () => {
  it(`runs kube-apiserver ${KUBE_VERSION} and a matching kubectl`, async () => {
    const { stdout } = await kubectl(["version", "-o", "json"]);
    const version = JSON.parse(stdout) as VersionInfo;
    expect(version.serverVersion?.gitVersion).toBe(KUBE_VERSION);
    expect(version.clientVersion?.gitVersion).toBe(KUBE_VERSION);
  });

  it("serves the bootstrap namespaces and creates test namespaces", async () => {
    const { stdout } = await kubectl(["get", "namespaces", "-o", "name"]);
    expect(stdout.split("\n")).toEqual(
      expect.arrayContaining(["namespace/default", "namespace/kube-system"]),
    );

    const ns = await createTestNamespace("Smoke_Test");
    onTestFinished(() => ns.delete());
    expect(ns.name).toMatch(/^smoke-test-[0-9a-f]{8}$/);
    await applyYaml("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\ndata:\n  greeting: hi\n", {
      namespace: ns.name,
    });
    const got = await kubectl([
      "get",
      "configmap",
      "hello",
      "-n",
      ns.name,
      "-o",
      "jsonpath={.data.greeting}",
    ]);
    expect(got.stdout).toBe("hi");
  });

  it("enforces RBAC for everyone but the admin", async () => {
    const admin = await kubectl(["auth", "can-i", "get", "pods", "--all-namespaces"]);
    expect(admin.stdout.trim()).toBe("yes");
    const sa = await kubectl(["auth", "can-i", "get", "pods", "--as=system:serviceaccount:x:y", "-n", "x"], {
      allowFailure: true,
    });
    expect(sa.stdout.trim()).toBe("no");
    expect(sa.code).toBe(1);
  });

  it("is reachable with @kubernetes/client-node", async () => {
    const core = kubeClient().makeApiClient(CoreV1Api);
    const ns = await core.readNamespace({ name: "default" });
    expect(ns.status?.phase).toBe("Active");
  });

  it("hands out a Redis URL too", () => {
    expect(inject("redisUrl")).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
  });
});
