-- Leads taken while Redis (routing state) was unreachable: recorded, scored and answered 202 with
-- status 'pending'; the queue drain routes them, in arrival order, once Redis answers again.
ALTER TABLE leads DROP CONSTRAINT leads_status_check;
ALTER TABLE leads ADD CONSTRAINT leads_status_check
    CHECK (status IN ('pending', 'assigned', 'accepted', 'reassigned', 'escalated', 'closed', 'unassigned'));

ALTER TABLE assignments DROP CONSTRAINT assignments_status_check;
ALTER TABLE assignments DROP CONSTRAINT assignments_owner_check;
ALTER TABLE assignments
    ADD CONSTRAINT assignments_status_check
        CHECK (status IN ('pending', 'assigned', 'accepted', 'reassigned', 'escalated', 'closed', 'unassigned')),
    ADD CONSTRAINT assignments_owner_check
        CHECK (status = 'closed' OR (status IN ('unassigned', 'pending')) = (owner_id IS NULL));
