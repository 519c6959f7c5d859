"""``number_conversion`` components: small integer arithmetic that configs use to derive step counts."""
