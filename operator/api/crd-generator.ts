import { z } from "zod";
import { CATEGORY, type CrdDefinition } from "./v1alpha1/crd-definition.ts";
import { API_VERSION, GROUP, INTEGRATION_NAME, VERSION } from "./v1alpha1/group-version.ts";

// The CRDs are generated from the zod schemas, so the API server and the
// TypeScript code validate the same shapes. `npm run crds` writes them; a unit
// test fails when crds/ is stale.

type JsonSchema = { [key: string]: unknown };

/** OpenAPI v3 schema of one zod schema, cleaned into what a structural CRD schema accepts. */
export function toStructuralSchema(schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, { io: "input", target: "openapi-3.0", unrepresentable: "throw" });
  return clean(json) as JsonSchema;
}

function clean(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(clean);
  if (node === null || typeof node !== "object") return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "$schema") continue;
    out[key] = clean(value);
  }
  // zod spells RFC 3339 as a long regex; Kubernetes checks format: date-time itself.
  if (out.format === "date-time") delete out.pattern;
  return out;
}

export function buildCrd(def: CrdDefinition): JsonSchema {
  const openAPIV3Schema: JsonSchema = {
    description: def.description,
    type: "object",
    properties: {
      apiVersion: {
        description: "APIVersion defines the versioned schema of this representation of an object.",
        type: "string",
      },
      kind: {
        description: "Kind is a string value representing the REST resource this object represents.",
        type: "string",
      },
      metadata: { type: "object" },
      spec: toStructuralSchema(def.spec),
      status: toStructuralSchema(def.status),
    },
    required: ["spec"],
  };
  if (def.rootValidations) openAPIV3Schema["x-kubernetes-validations"] = def.rootValidations;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${def.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: [CATEGORY],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: { openAPIV3Schema },
        },
      ],
    },
  };
}

export const DESTINATION_POLICY_NAME = `${GROUP}-destination-policy`;

/**
 * A Webhook's URL may use plain http only when its namespace's integration allows it.
 * A CRD's CEL cannot see another object, so a ValidatingAdmissionPolicy does it,
 * with the namespace's WebhookIntegration as its parameter. Without an integration
 * the check is skipped at admission; the operator then reports the webhook not Ready.
 */
export function buildDestinationPolicy(): JsonSchema[] {
  return [
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata: { name: DESTINATION_POLICY_NAME },
      spec: {
        failurePolicy: "Fail",
        paramKind: { apiVersion: API_VERSION, kind: "WebhookIntegration" },
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: [GROUP],
              apiVersions: [VERSION],
              operations: ["CREATE", "UPDATE"],
              resources: ["webhooks"],
            },
          ],
        },
        validations: [
          {
            expression:
              "!object.spec.url.lowerAscii().startsWith('http://') || (has(params.spec.destinationPolicy) && params.spec.destinationPolicy.allowPlainHTTP)",
            messageExpression: `'spec.url: plain http:// is not allowed in namespace ' + object.metadata.namespace + '; use https:// or set spec.destinationPolicy.allowPlainHTTP on WebhookIntegration ${INTEGRATION_NAME}'`,
            reason: "Invalid",
          },
        ],
      },
    },
    {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicyBinding",
      metadata: { name: DESTINATION_POLICY_NAME },
      spec: {
        policyName: DESTINATION_POLICY_NAME,
        validationActions: ["Deny"],
        paramRef: { name: INTEGRATION_NAME, parameterNotFoundAction: "Allow" },
      },
    },
  ];
}
