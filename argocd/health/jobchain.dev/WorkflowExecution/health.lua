-- Argo CD health of a jobchain.dev WorkflowExecution, from status.phase.
-- No status yet, Pending, Running: Progressing (a run without status must not look Healthy,
-- or sync waves would not wait for it). Succeeded: Healthy. Failed: Degraded.
-- Cancelled: Suspended, because someone stopped it on purpose (spec.cancel): nothing is
-- broken, and Degraded would page people for a deliberate action; Suspended is how Argo CD
-- shows other stopped-on-purpose resources (a suspended CronJob, a paused Rollout).
-- Running with an approval gate waiting (status.waiting): Suspended, until someone decides.
local hs = { status = "Progressing", message = "Waiting for the operator to start the execution" }
local status = obj.status
if status == nil or status.phase == nil or status.phase == "" then
  return hs
end

-- The operator's message, or DEFAULT, and how far the execution got.
local function describe(default)
  local text = status.message
  if text == nil or text == "" then
    text = default
  end
  if status.progress ~= nil and status.progress ~= "" then
    text = text .. " (" .. status.progress .. " nodes finished)"
  end
  return text
end

local phase = status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = (status.message ~= nil and status.message ~= "") and status.message or "Execution succeeded"
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe("Execution failed" .. (status.reason and status.reason ~= "" and (": " .. status.reason) or ""))
elseif phase == "Cancelled" then
  hs.status = "Suspended"
  hs.message = describe("Execution was cancelled")
elseif phase == "Running" and status.waiting ~= nil and #status.waiting > 0 then
  -- An approval gate waits for a person: nothing progresses until someone decides, as with
  -- Argo Workflows' suspend node, which Argo CD shows Suspended.
  local gate = status.waiting[1]
  local text = "Waiting for approval of " .. gate.name
  if gate.message ~= nil and gate.message ~= "" then
    text = text .. ": " .. gate.message
  end
  if #status.waiting > 1 then
    text = text .. " (and " .. (#status.waiting - 1) .. " more gate(s))"
  end
  hs.status = "Suspended"
  hs.message = text .. "; approve with `jobchain approve " .. (obj.metadata.name or "EXECUTION") .. " " .. gate.name .. "`"
elseif phase == "Running" then
  local text = "Running"
  if status.running ~= nil and status.running ~= "" then
    text = text .. ": " .. status.running
  end
  if status.progress ~= nil and status.progress ~= "" then
    text = text .. " (" .. status.progress .. " nodes finished)"
  end
  hs.message = text
elseif phase == "Pending" then
  hs.message = describe("Pending")
else
  hs.message = "Unrecognised phase " .. phase
end
return hs
