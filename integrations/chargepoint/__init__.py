"""The ChargePoint Web Services integration (SOAP): stations as a load-shed demand-response primitive."""
