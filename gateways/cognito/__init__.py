"""Amazon Cognito as the identity provider (boto3 `cognito-idp`), selected with IOTCLOUD_IDENTITY=cognito."""
