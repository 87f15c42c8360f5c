-- pause_subscription: $1 subscription, $2 reason (auto-pause).
SELECT courier.pause_subscription($1, $2)
