import type { z } from "zod";

/** What the CRD generator needs to know about one kind, beside its zod schemas. */
export interface CrdDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  /** CEL rules on the whole object (the only place that can see metadata.name). */
  rootValidations?: Array<{ rule: string; message: string }>;
  printerColumns: Array<{
    name: string;
    type: "string" | "integer" | "boolean" | "date" | "number";
    jsonPath: string;
    description: string;
    priority?: number;
  }>;
}

export const CATEGORY = "dataforce";

export const readyColumns = [
  {
    name: "Ready",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="Ready")].status',
    description: "Whether the object is ready.",
  },
  {
    name: "Reason",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
    description: "Why the object is or is not ready.",
  },
] as const satisfies CrdDefinition["printerColumns"];

export const ageColumn = {
  name: "Age",
  type: "date",
  jsonPath: ".metadata.creationTimestamp",
  description: "Time since creation.",
} as const satisfies CrdDefinition["printerColumns"][number];
