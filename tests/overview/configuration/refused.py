"""The field errors a configuration service refuses a change with."""

import pytest

from overview.configuration.common import ConfigurationError


def field_errors(save, *args) -> dict[str, list[str]]:
    with pytest.raises(ConfigurationError) as refused:
        save(*args)
    return refused.value.field_errors
