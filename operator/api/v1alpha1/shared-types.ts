import { z } from "zod";

// Building blocks shared by the three kinds. Every field carries a description,
// which the CRD generator copies into the schema so `kubectl explain` documents it.

/** A Go-style duration ("500ms", "15s", "1h30m"): what Kubernetes users write everywhere else. */
export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$";

export function duration(description: string, bounds: { min: string; max: string }) {
  return z
    .string()
    .max(32)
    .regex(new RegExp(DURATION_PATTERN), "must be a duration such as 500ms, 15s, 5m or 1h")
    .refine(
      (value) =>
        durationToMs(value) >= durationToMs(bounds.min) && durationToMs(value) <= durationToMs(bounds.max),
      `must be between ${bounds.min} and ${bounds.max}`,
    )
    .meta({
      description: `${description} A duration such as 500ms, 15s, 5m or 1h; between ${bounds.min} and ${bounds.max}.`,
      "x-kubernetes-validations": [
        {
          rule: `duration(self) >= duration('${bounds.min}') && duration(self) <= duration('${bounds.max}')`,
          message: `must be between ${bounds.min} and ${bounds.max}`,
        },
      ],
    });
}

/** Parses a duration accepted by `duration()` into milliseconds. */
export function durationToMs(value: string): number {
  const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const match of value.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) {
    total += Number(match[1]) * (units[match[2] ?? ""] ?? Number.NaN);
  }
  return total;
}

export const timestamp = (description: string) =>
  z.iso.datetime({ offset: true }).meta({ description: `${description} RFC 3339 time.` });

/** metav1.Condition, with the same validation Kubernetes applies to its own types. */
export const ConditionSchema = z
  .object({
    type: z
      .string()
      .max(316)
      .regex(
        /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
      )
      .meta({ description: "Type of condition in CamelCase, for example Ready." }),
    status: z.enum(["True", "False", "Unknown"]).meta({ description: "Status of the condition." }),
    observedGeneration: z
      .int()
      .min(0)
      .max(Number.MAX_SAFE_INTEGER)
      .optional()
      .meta({ description: "The .metadata.generation the condition was set for." }),
    lastTransitionTime: timestamp("Last time the condition changed from one status to another."),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
      .meta({ description: "Programmatic identifier of the reason for the last transition, in CamelCase." }),
    message: z.string().max(32768).meta({ description: "Human-readable details of the last transition." }),
  })
  .meta({ description: "A condition in the Kubernetes convention (metav1.Condition)." });
export type Condition = z.infer<typeof ConditionSchema>;

export const conditions = (description: string) =>
  z
    .array(ConditionSchema)
    .max(16)
    .optional()
    .meta({
      description,
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    });

/**
 * The status every kind shows until the operator first writes one: a default the API server
 * applies when it reads an object, never stored. kstatus (Flux) and Argo CD then see a generation
 * not yet observed (in progress) instead of a bare object, which kstatus would take for Current.
 */
export const UNOBSERVED_STATUS = { observedGeneration: 0 } as const;

export const observedGeneration = () =>
  z
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .optional()
    .meta({ description: "The .metadata.generation this status was computed from." });

/** A DNS-1123 subdomain, the shape of most Kubernetes object names. */
export const objectName = (description: string) =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(
      /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
      "must be a DNS-1123 subdomain",
    )
    .meta({ description });

export const SecretKeySelectorSchema = z
  .object({
    name: objectName("Name of a Secret in the same namespace."),
    key: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[-._a-zA-Z0-9]+$/, "must be a valid Secret key")
      .meta({ description: "Key within the Secret's data." }),
  })
  .meta({ description: "Selects a key of a Secret in the same namespace." });

/** The common envelope of a namespaced custom object, with its spec and status shapes. */
export interface CustomObject<Spec, Status> {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }>;
  };
  spec: Spec;
  status?: Status;
}
