"""Strict input for the configuration API: JSON values of the JSON type a field expects, no unknown or
read-only fields; and the bridge that turns overview.configuration's errors into DRF's, field by field."""

from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from typing import TypeVar

from django.db import models
from django.db.models import Model
from rest_framework import serializers

from overview.configuration.common import ConfigurationError, Invalid

T = TypeVar("T")

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


def checked(check: Callable[..., T], value, *args) -> T:
    """One field through its configuration check, its message as the field's DRF error."""
    try:
        return check(value, *args)
    except Invalid as bad:
        raise serializers.ValidationError(str(bad)) from bad


def checked_rules(rules: Callable[[dict, Model | None], dict], attrs: dict, instance: Model | None) -> dict:
    """The configuration's rules across fields, its field errors as DRF's (the same field names)."""
    try:
        return rules(attrs, instance)
    except ConfigurationError as error:
        raise serializers.ValidationError(error.field_errors) from error
