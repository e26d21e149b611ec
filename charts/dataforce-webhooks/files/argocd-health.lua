-- Argo CD health check for webhooks.dataforce.io WebhookIntegration, Webhook, WebhookEvent and
-- WebhookReplay.
-- Argo CD treats an unknown custom resource as Healthy as soon as it exists; this reads the
-- status the operator writes instead, the way kstatus (Flux) reads it, so that both agree:
--   generation not yet observed -> Progressing; Stalled=True -> Degraded (kstatus Failed);
--   Reconciling=True -> Progressing; Ready=True -> Healthy, also when paused or disabled on
--   purpose (a Suspended resource would hold a sync wave forever); Ready False or Unknown ->
--   Progressing. Install it in argocd-cm under
--   resource.customizations.health.webhooks.dataforce.io_WebhookIntegration
--   resource.customizations.health.webhooks.dataforce.io_Webhook
--   resource.customizations.health.webhooks.dataforce.io_WebhookEvent
--   resource.customizations.health.webhooks.dataforce.io_WebhookReplay
-- (the same script for the four kinds; see the chart README).
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.status == nil then
  return hs
end

local function describe(condition)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return condition.reason or condition.type
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed ~= generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Reconciling" and condition.status == "True" then
      hs.message = describe(condition)
      return hs
    end
    if condition.type == "Stalled" and condition.status == "True" then
      hs.status = "Degraded"
      hs.message = describe(condition)
      return hs
    end
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
if ready == nil then
  return hs
end
hs.message = describe(ready)
if ready.status == "True" then
  hs.status = "Healthy"
end
return hs
