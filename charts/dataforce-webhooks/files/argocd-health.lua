-- Argo CD health check for webhooks.dataforce.io WebhookIntegration, Webhook and WebhookEvent.
-- Argo CD treats an unknown custom resource as Healthy as soon as it exists; this reads the
-- status the operator writes instead. Install it in argocd-cm under
--   resource.customizations.health.webhooks.dataforce.io_WebhookIntegration
--   resource.customizations.health.webhooks.dataforce.io_Webhook
--   resource.customizations.health.webhooks.dataforce.io_WebhookEvent
-- (the same script for the three kinds; see the chart README).
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.status == nil then
  return hs
end

if obj.kind == "WebhookEvent" then
  local phase = obj.status.phase
  if phase == "SENT" then
    hs.status = "Healthy"
    hs.message = "Delivered"
  elseif phase == "FAILED" then
    hs.status = "Degraded"
    hs.message = "Delivery failed; annotate webhooks.dataforce.io/retry=<token> to retry"
  elseif phase == "QUEUED" then
    hs.message = "Queued for delivery"
  end
  return hs
end

-- WebhookIntegration and Webhook: the spec must have been observed, then Ready decides.
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Stalled" and condition.status == "True" then
      hs.status = "Degraded"
      hs.message = condition.message or condition.reason or "Stalled"
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
local message = ready.message
if message == nil or message == "" then
  message = ready.reason or ""
end
hs.message = message
if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" then
  -- Switched off on purpose: not an error.
  if ready.reason == "Paused" or ready.reason == "IntegrationDisabled" then
    hs.status = "Suspended"
  else
    hs.status = "Degraded"
  end
end
return hs
