"""The emporia integration: HTTP client and adapter to the portal's normalized model."""
