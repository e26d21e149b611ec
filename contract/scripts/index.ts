import { addDeliveriesScript } from "./add-deliveries.ts";
import { countFanoutFailureScript } from "./count-fanout-failure.ts";
import { fanoutEventsScript } from "./fanout-events.ts";
import { forwardLegacyStatusScript } from "./forward-legacy-status.ts";
import { healOrderedQueuesScript } from "./heal-ordered-queues.ts";
import { markArchivedScript } from "./mark-archived.ts";
import { noteMirrorErrorScript } from "./note-mirror-error.ts";
import { promoteDueScript } from "./promote-due.ts";
import { raiseArchiveHorizonScript } from "./raise-archive-horizon.ts";
import { readDeliveriesScript } from "./read-deliveries.ts";
import { renewClaimsScript } from "./renew-claims.ts";
import { reportEndpointHealthScript } from "./report-endpoint-health.ts";
import { requestRetryScript } from "./request-retry.ts";
import { restoreDeliveryScript } from "./restore-delivery.ts";
import type { LuaScript } from "./script.ts";
import { settleDeliveriesScript } from "./settle-deliveries.ts";
import { trimLogIndexesScript } from "./trim-log-indexes.ts";
import { writeRoutingScript } from "./write-routing.ts";

/** Every script of the protocol, for `loadScripts` at startup. */
export const ALL_SCRIPTS: readonly LuaScript[] = [
  fanoutEventsScript,
  countFanoutFailureScript,
  settleDeliveriesScript,
  promoteDueScript,
  renewClaimsScript,
  requestRetryScript,
  writeRoutingScript,
  noteMirrorErrorScript,
  readDeliveriesScript,
  trimLogIndexesScript,
  forwardLegacyStatusScript,
  markArchivedScript,
  raiseArchiveHorizonScript,
  restoreDeliveryScript,
  addDeliveriesScript,
  healOrderedQueuesScript,
  reportEndpointHealthScript,
];
