"""The MQTT sink: the broker link, state and command topics, Home Assistant discovery."""
