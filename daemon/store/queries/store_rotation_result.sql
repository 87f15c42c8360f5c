-- store_rotation_result: the sealed output ($3, fingerprint $4) of the
-- rotation command of credential $1, run by $2, as its rotating version;
-- NULL version when refused (no longer $2's rotation, or the active secret).
SELECT courier.store_rotation_result($1, $2, $3, $4) AS version
