"""Pages to configure sources, destinations, mappings and alert rules, plus notifications and API tokens.
Forms turn browser input into API request bodies; the API's serializers validate and save them."""
