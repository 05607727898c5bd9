"""The Smartcar integration (EVs of any supported brand): HTTP client and adapter."""
