"""Speech-text alignment losses, one class per method, chosen with ``--align`` (an ESPnet ``ClassChoices``)."""
