"""The hosted page's forms: the customer's details, the manufacturer, an OEM's own credentials."""

from django import forms
from django.utils.translation import gettext_lazy as _


class DetailsForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=100)
    last_name = forms.CharField(label=_("Last name"), max_length=100)
    email = forms.EmailField(label=_("E-mail"), required=False)
    phone = forms.CharField(label=_("Phone"), max_length=32, required=False)
    street_one = forms.CharField(label=_("Street"), max_length=200)
    street_two = forms.CharField(label=_("Street (line 2)"), max_length=200, required=False)
    city = forms.CharField(label=_("City"), max_length=100)
    state = forms.CharField(label=_("State"), max_length=50)
    postal_code = forms.CharField(label=_("Postal code"), max_length=20)
    country = forms.CharField(label=_("Country"), max_length=2, initial="US", help_text=_("Two letters, e.g. US."))


class ChannelForm(forms.Form):
    channel = forms.ChoiceField(label=_("Manufacturer"), widget=forms.RadioSelect)

    def __init__(self, *args, choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = choices


def credentials_form(fields: tuple[str, ...], data=None) -> forms.Form:
    """A form of the OEM's own credential fields (passwords and keys masked)."""
    form = forms.Form(data)
    for name in fields:
        secret = any(word in name for word in ("password", "secret", "key", "token"))
        form.fields[name] = forms.CharField(
            label=name.replace("_", " ").capitalize(),
            max_length=500,
            widget=forms.PasswordInput(render_value=False) if secret else forms.TextInput(),
        )
    return form
