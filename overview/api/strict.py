"""Strict input for the configuration API: JSON values of the JSON type a field expects, no unknown or
read-only fields, values PostgreSQL can store, and the checks the pages share (JSON Schemas, public URLs)."""

from collections.abc import Mapping as MappingABC

from django.db import models
from rest_framework import serializers

from delivery import http, schema_controls

# ---------------------------------------------------------------------------------------------------
# Strict fields: bodies are JSON (the API parses nothing else), so a value must have the JSON type its
# field expects; DRF would otherwise read "yes" as true and "10" as 10.


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def storable_json(value: object, path: str = "") -> None:
    """PostgreSQL's jsonb cannot hold NUL characters or lone surrogates: refuse them as input errors."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError(f"{path or 'A string'} contains a NUL character.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as bad:
            raise serializers.ValidationError(f"{path or 'A string'} is not valid Unicode.") from bad
    elif isinstance(value, MappingABC):
        for key, item in value.items():
            storable_json(key, path)
            storable_json(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            storable_json(item, f"{path}[{index}]")


class StrictModelSerializer(serializers.ModelSerializer):
    """Unknown fields and read-only fields in the input are errors, not silently dropped."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: StrictBooleanField,
        models.IntegerField: StrictIntegerField,
        models.PositiveIntegerField: StrictIntegerField,
        models.PositiveSmallIntegerField: StrictIntegerField,
        models.FloatField: StrictFloatField,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }

    def to_internal_value(self, data):
        if isinstance(data, MappingABC):
            errors = {}
            for name in data:
                if name not in self.fields:
                    errors[name] = ["Unknown field."]
                elif self.fields[name].read_only:
                    errors[name] = [f"{name} is read-only."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def check_json_schema(schema: object, what: str) -> None:
    """Refuse a schema routing would not use (delivery.schema_controls' rule), saying why."""
    try:
        schema_controls.check_schema(schema, what)
    except schema_controls.InvalidSchema as error:
        raise serializers.ValidationError(str(error)) from error


def check_endpoint(url: str) -> str:
    """Refuse URLs the pipeline's outbound client would refuse (delivery.http's rule). A host that does
    not resolve now is accepted: delivery records ENOTFOUND if it still does not when events go out."""
    try:
        http.check_public_url(url)
    except http.HostNotFoundError:
        return url
    except http.PrivateAddressError as refused:
        raise serializers.ValidationError(
            f"{refused}; this deployment does not deliver to those."
        ) from refused
    except http.DestinationAddressError as refused:
        raise serializers.ValidationError(f"{refused}.") from refused
    return url
