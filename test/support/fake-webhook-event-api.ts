import { randomUUID } from "node:crypto";
import type { WebhookEvent } from "../../operator/api/v1alpha1/index.ts";
import type { ResourceType } from "../../operator/controller/kube.ts";
import type { MirrorWrites } from "../../operator/mirror/mirror.ts";

// The WebhookEvent mirror's writes against a fake API server, for tests that run the mirror with
// real Redis (and a real dispatcher) but no API server.

/** A fake API server: WebhookEvents by name, every write logged, failures on demand. */
export class FakeWebhookEventApi implements MirrorWrites {
  readonly objects = new Map<string, WebhookEvent>();
  readonly calls: string[] = [];
  failures = 0;
  /** Names the API server refuses as invalid (422), like a body over the CRD's bounds. */
  readonly invalid = new Set<string>();

  async create<T extends object>(_type: ResourceType, _namespace: string, body: T): Promise<T> {
    const event = structuredClone(body) as unknown as WebhookEvent;
    this.calls.push(`create ${event.metadata.name}`);
    this.maybeFail();
    if (this.invalid.has(event.metadata.name)) {
      throw Object.assign(new Error("WebhookEvent.webhooks.dataforce.io is invalid"), { code: 422 });
    }
    this.objects.set(event.metadata.name, {
      ...event,
      metadata: { ...event.metadata, generation: 1, uid: randomUUID() },
    });
    return body;
  }

  async patchStatus(
    _type: ResourceType,
    target: { name: string },
    status: Record<string, unknown>,
  ): Promise<void> {
    this.calls.push(`status ${target.name} ${String(status.phase)}`);
    this.maybeFail();
    const object = this.objects.get(target.name)!;
    object.status = { ...object.status, ...status } as WebhookEvent["status"];
  }

  async patch(_type: ResourceType, target: { name: string }, patch: Record<string, unknown>): Promise<void> {
    const labels = (patch as { metadata: { labels: Record<string, string> } }).metadata.labels;
    this.calls.push(`labels ${target.name} ${Object.values(labels).join(",")}`);
    this.maybeFail();
    const object = this.objects.get(target.name)!;
    object.metadata.labels = { ...object.metadata.labels, ...labels };
  }

  private maybeFail(): void {
    if (this.failures > 0) {
      this.failures--;
      throw Object.assign(new Error("injected failure"), { code: 500 });
    }
  }
}
