/**
 * The operator's RBAC, read from the chart's single rules file, so that the end-to-end tests
 * run the operator with exactly the permissions the chart grants:
 *
 *   const rbac = operatorRbacManifests({ namespace: ns.name, name: "operator" });
 *   await applyYaml(rbac.yaml);
 *   // then run the operator with `kubectl --as=<rbac.user>`-style impersonation, or a token
 *   // of ServiceAccount rbac.serviceAccount in rbac.namespace.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { chartDir } from "./helm.ts";

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface OperatorRbacRules {
  /** Cluster-wide: the four kinds, their status, WebhookEvents, Secrets, Events. */
  clusterRole: PolicyRule[];
  /** In the operator's own namespace: the leader-election Lease. */
  leaderElectionRole: PolicyRule[];
}

export const operatorRbacRulesFile = join(chartDir, "files", "operator-rbac-rules.yaml");

export function operatorRbacRules(): OperatorRbacRules {
  return parse(readFileSync(operatorRbacRulesFile, "utf8")) as OperatorRbacRules;
}

export interface OperatorRbac {
  /** ServiceAccount name and namespace (the operator's "release namespace"). */
  serviceAccount: string;
  namespace: string;
  /** The username the API server sees for that ServiceAccount (for impersonation). */
  user: string;
  /** ServiceAccount, ClusterRole + binding, leader-election Role + binding, as one YAML stream. */
  yaml: string;
}

/**
 * Manifests that give ServiceAccount `name` in `namespace` the operator's permissions. The
 * cluster-scoped names carry the namespace, so parallel tests do not collide.
 */
export function operatorRbacManifests(options: { namespace: string; name?: string }): OperatorRbac {
  const { namespace } = options;
  const name = options.name ?? "dataforce-operator";
  const clusterName = `${namespace}-${name}`;
  const rules = operatorRbacRules();
  const subject = [{ kind: "ServiceAccount", name, namespace }];
  const docs = [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: clusterName },
      rules: rules.clusterRole,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: clusterName },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterName },
      subjects: subject,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: `${name}-leader-election`, namespace },
      rules: rules.leaderElectionRole,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: `${name}-leader-election`, namespace },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: `${name}-leader-election` },
      subjects: subject,
    },
  ];
  return {
    serviceAccount: name,
    namespace,
    user: `system:serviceaccount:${namespace}:${name}`,
    yaml: docs.map((doc) => stringify(doc)).join("---\n"),
  };
}
