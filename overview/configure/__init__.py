"""Pages to configure sources, destinations, mappings and alert rules, and the operator's API token.
Forms turn browser input into the configuration services' input; the services check and save it."""
