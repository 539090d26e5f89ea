"""What every configuration page shares: saving a form through a configuration service (the same
rules as the API), with the service's field errors shown next to the right input, and viewers' forms."""

from collections.abc import Callable
from typing import TypeVar

from overview.configuration.common import ConfigurationError
from overview.configure.forms import ConfigForm

T = TypeVar("T")


def save_form(form: ConfigForm, save: Callable[..., T], *args) -> T | None:
    """`save(*args)` (a configuration service's create or update); on its field errors, put them on
    the form and return None."""
    try:
        return save(*args)
    except ConfigurationError as error:
        for field, messages in error.field_errors.items():
            name = form.field_names.get(field, field)
            form.add_error(name if name in form.fields else None, messages)
        return None


def read_only(form: ConfigForm) -> ConfigForm:
    """A viewer's copy of a form: every input disabled."""
    for field in form.fields.values():
        field.disabled = True
    return form
