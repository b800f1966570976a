from django.db import migrations, models


class Migration(migrations.Migration):
    """`attempts` counted claims (the fencing token of a run, of a part): it is named for what it is."""

    dependencies = [
        ("jobs", "0010_job_retries_audio_bounded"),
    ]

    operations = [
        migrations.RenameField(model_name="job", old_name="attempts", new_name="claims"),
        migrations.RenameField(model_name="sourcevideo", old_name="attempts", new_name="claims"),
        migrations.AlterField(
            model_name="job",
            name="claims",
            field=models.PositiveSmallIntegerField(
                default=0, help_text="How many times a worker claimed the job (was `attempts`): the fencing token of a run."
            ),
        ),
        migrations.AlterField(
            model_name="sourcevideo",
            name="claims",
            field=models.PositiveSmallIntegerField(
                default=0, help_text="How many times a worker claimed this part: the fencing token of the claim."
            ),
        ),
    ]
