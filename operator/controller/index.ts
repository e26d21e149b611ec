// The controller machinery: informers, work queue, controllers, leader election,
// status/condition/event helpers and the manager that runs them. Reconcilers build
// on this module and nothing here knows about webhooks.

export {
  type Condition,
  type ConditionInput,
  type ConditionStatus,
  findCondition,
  isConditionTrue,
  kubeTime,
  removeCondition,
  setCondition,
} from "./conditions.ts";
export {
  annotationsChanged,
  anyOf,
  Controller,
  type ControllerOptions,
  type EventSource,
  generationChanged,
  mapToNamespace,
  mapToOwners,
  type ReconcileRequest,
  type ReconcileResult,
  type Reconciler,
  TerminalError,
  type WatchEvent,
  type WatchSource,
} from "./controller.ts";
export { type EventInput, EventRecorder, type EventRecorderOptions, REPORTING_CONTROLLER } from "./events.ts";
export { Informer, type InformerHandlers, type InformerOptions, type InformerSource } from "./informer.ts";
export {
  errorCode,
  isConflict,
  isGone,
  isNotFound,
  objectKey,
  type ResourceType,
  resourcePath,
  splitKey,
} from "./kube.ts";
export { type LeaderElectionOptions, LeaderElector } from "./leader-election.ts";
export { Manager, type ManagerOptions, type Runnable } from "./manager.ts";
export {
  createMergePatch,
  mergePatch,
  type ObjectTarget,
  type PatchOptions,
  patchObject,
  patchStatus,
  updateStatus,
} from "./status.ts";
export { type BackoffOptions, type KeyHandler, WorkQueue, type WorkQueueOptions } from "./workqueue.ts";
