"""The IoT pipeline off chain: MQTT gateway, reading checks, reading store, batch anchoring and
verification of a reading against its anchored batch (docs/adr/0008-iot-gateway.md)."""
