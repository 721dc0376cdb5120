"""The notifier process and its delivery channels (outbox, SES, SNS, SMTP, devices)."""
