from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    """Render every form with the project's accessible field markup."""

    form_template_name = "forms/div.html"
    field_template_name = "forms/field.html"
