"""What a configuration may be, as plain functions that the configure pages and the API's serializers
both call: one module per thing configured (sources, destinations, mappings, alert rules), each with
its field checks, its rules across fields, and the functions that create and update it."""
