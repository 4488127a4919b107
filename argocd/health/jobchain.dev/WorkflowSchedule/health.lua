-- Argo CD health of a jobchain.dev WorkflowSchedule, from spec.suspend and its Ready condition.
-- Suspended (spec.suspend: true): Suspended, stopped on purpose, as Argo CD shows a suspended
-- CronJob. Ready=False (a schedule or time zone the operator cannot use): Degraded with its
-- message; no execution is created until it is fixed. Ready=True: Healthy, with the next run.
-- No condition yet, or one about an older generation: Progressing (not looked at yet).
-- How its executions end is not the schedule's health: each execution has its own.
local hs = { status = "Progressing", message = "Waiting for the operator to read the schedule" }
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: no new executions (spec.suspend)"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    local seen = condition.observedGeneration or obj.status.observedGeneration
    if generation ~= nil and seen ~= nil and seen < generation then
      hs.message = "Waiting for the operator to read generation " .. generation
      return hs
    end
    if condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message or "Scheduled"
      if obj.status.nextScheduleTime ~= nil then
        hs.message = hs.message .. "; next run " .. obj.status.nextScheduleTime
      end
    elseif condition.status == "False" then
      hs.status = "Degraded"
      hs.message = (condition.message ~= nil and condition.message ~= "") and condition.message
        or (condition.reason or "Invalid schedule")
    end
    return hs
  end
end
return hs
