from django.forms import Form
from django.forms.renderers import TemplatesSetting

from crowdplatform.core.errors import ApplicationError


class FormRenderer(TemplatesSetting):
    """Render every form with the project's accessible field markup."""

    form_template_name = "forms/div.html"
    field_template_name = "forms/field.html"


def form_add_application_error(form: Form, error: ApplicationError) -> None:
    """Show a domain error on the form: per field where the field exists, else above the form."""
    for field, problems in error.fields.items():
        for problem in problems:
            form.add_error(field if field in form.fields else None, problem)
    if not error.fields:
        form.add_error(None, error.message)
