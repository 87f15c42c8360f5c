-- start_due_rotations: as the maintenance leader $1, up to $2 due credential
-- rotations: those without a command are raised (CredentialRotationDue and an
-- escalation); those with one are marked running for $1 and returned, for
-- the daemon to run the command (courier.start_due_rotations, 70_providers.sql).
SELECT r.credential_id, r.tenant_id, r.rotation_command FROM courier.start_due_rotations($1, $2) r
