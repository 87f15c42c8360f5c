-- disable_subscription: $1 subscription, $2 reason (410 Gone).
SELECT courier.disable_subscription($1, $2)
