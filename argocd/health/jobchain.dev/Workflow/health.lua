-- Argo CD health of a jobchain.dev Workflow, from its Ready condition.
-- Ready=True: Healthy. Ready=False: Degraded, with the operator's message (the graph or a
-- CEL expression is invalid; executions of it would fail). No condition yet, Unknown, or a
-- condition about an older generation than the spec: Progressing (the operator has not
-- validated this spec yet), so sync waves wait for it.
local hs = { status = "Progressing", message = "Waiting for the operator to validate the workflow" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    local seen = condition.observedGeneration or obj.status.observedGeneration
    if generation ~= nil and seen ~= nil and seen < generation then
      hs.message = "Waiting for the operator to validate generation " .. generation
      return hs
    end
    if condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message ~= "" and condition.message or "Workflow is valid"
    elseif condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message ~= "" and condition.message or (condition.reason or "Workflow is invalid")
    elseif condition.message ~= nil and condition.message ~= "" then
      hs.message = condition.message
    end
    return hs
  end
end
return hs
