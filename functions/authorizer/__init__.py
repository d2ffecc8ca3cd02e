"""Who may call the API: the Cognito token trigger that puts the tenant into access tokens."""
