"""Who may call the API: a Cognito user pool whose access tokens the API's authorizers verify.

- Users are created by operators (no self sign-up), each with an immutable `tenant` attribute set at creation.
  Strong passwords, optional TOTP MFA (no SMS), email as the sign-in name and for account recovery.
- One resource server, `agentplatform`, with one custom scope per distinct scope the topology's protected routes
  require; a route needs `agentplatform/<scope>` (agentplatform.principal reads it back as `<scope>`).
- One app client for people: the authorization code grant with PKCE, no client secret (a CLI or browser app
  cannot keep one). Machine clients use the platform's API keys (the Lambda authorizer), not Cognito.
- A Cognito prefix domain for the hosted sign-in pages the code grant goes through.
- The group `admin` (topology ADMIN_GROUP) when a route needs the admin scope: only its members keep
  `agentplatform/admin` in their access tokens; the pre-token trigger removes it for everyone else.

Two verifiers read the pool's tokens: API Gateway's JWT authorizer on the `jwt` routes (api.py), and the
platform's Lambda authorizer on the `token` routes, which gets the issuer, audience and JWKS URL in its
environment from `add_token_verifier` (no IAM: the JWKS is public).

The `tenant` claim: Cognito puts custom attributes into ID tokens only. The API takes access tokens (they carry
the scopes), and an access token gets a `tenant` claim only from a pre-token-generation trigger of event version
2 (Essentials plan or above): the topology's `pre_token` function (functions/authorizer/pre_token.py), attached
by `add_token_trigger`.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from agentplatform.topology import ADMIN_GROUP, ADMIN_SCOPE, Route, Topology
from infra.cdk.nag import acknowledge

RESOURCE_SERVER = "agentplatform"
TENANT_CLAIM_TRIGGER = "pre_token"  # the topology function Cognito calls before issuing tokens
TENANT_ATTRIBUTE = "tenant"  # custom:tenant in tokens and in the user pool API
# What the Lambda authorizer verifies a user's access token with (its environment; Cognito access tokens carry
# the app client id as `client_id`, not `aud`, hence a list of client ids as the audience).
JWT_ISSUER_ENV = "JWT_ISSUER"
JWT_AUDIENCE_ENV = "JWT_AUDIENCE"
JWKS_URL_ENV = "JWKS_URL"

OPTIONAL_MFA_REASON = (
    "MFA is optional (TOTP only, no SMS): users are created by operators, and each tenant decides whether its "
    "users must enroll an authenticator app; making it required is the one setting `mfa=Mfa.REQUIRED`, which makes "
    "every user enroll TOTP at their first sign-in."
)
ESSENTIALS_PLAN_REASON = (
    "The user pool is on the Essentials feature plan (the default of agentplatform:userPoolFeaturePlan): it has "
    "the access-token customization the tenant claim needs, without Plus's price per monthly active user. Threat "
    "protection (Plus) adds risk-based adaptive authentication and compromised-credential checks; set "
    "agentplatform:userPoolFeaturePlan=plus to turn it on in full-function mode."
)


def protected_routes(topology: Topology) -> list[Route]:
    """The routes that need credentials (`$default` included): every non-public one."""
    return [route for route in topology.routes if not route.public]


def route_scopes(topology: Topology) -> list[str]:
    """Every distinct scope the protected routes require, sorted."""
    return sorted({scope for route in protected_routes(topology) for scope in route.scopes})


def scope_name(scope: str) -> str:
    """The OAuth scope a token carries for a topology scope: `search` -> `agentplatform/search`."""
    return f"{RESOURCE_SERVER}/{scope}"


class Auth(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        feature_plan: str,
        callback_urls: tuple[str, ...],
        domain_prefix: str | None,
    ) -> None:
        super().__init__(scope, id)
        plus = feature_plan == "plus"
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            custom_attributes={TENANT_ATTRIBUTE: cognito.StringAttribute(min_len=1, max_len=64, mutable=False)},
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                password_history_size=5,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS if plus else cognito.FeaturePlan.ESSENTIALS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION if plus else None,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(self.user_pool, "AwsSolutions-COG2", OPTIONAL_MFA_REASON)
        if not plus:
            acknowledge(self.user_pool, "AwsSolutions-COG8", ESSENTIALS_PLAN_REASON)

        self.scopes = {
            name: cognito.ResourceServerScope(
                scope_name=name,
                scope_description=(
                    "Routes: " + ", ".join(r.route_key for r in protected_routes(topology) if name in r.scopes)
                )[:256],
            )
            for name in route_scopes(topology)
        }
        self.resource_server = self.user_pool.add_resource_server(
            "ResourceServer", identifier=RESOURCE_SERVER, scopes=list(self.scopes.values())
        )
        self.client = self.user_pool.add_client(
            "AppClient",
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[
                    cognito.OAuthScope.OPENID,
                    cognito.OAuthScope.EMAIL,
                    *(cognito.OAuthScope.resource_server(self.resource_server, s) for s in self.scopes.values()),
                ],
                callback_urls=list(callback_urls),
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
            read_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True, email_verified=True)
            .with_custom_attributes(TENANT_ATTRIBUTE),
            # The tenant is set by operators at creation (and immutable): clients write only the email.
            write_attributes=cognito.ClientAttributes().with_standard_attributes(email=True),
        )
        if ADMIN_SCOPE in self.scopes:
            self.admin_group: cognito.UserPoolGroup | None = self.user_pool.add_group(
                "AdminGroup",
                group_name=ADMIN_GROUP,
                description=(
                    f"Tenant administrators: only members keep the {scope_name(ADMIN_SCOPE)} scope in their access "
                    "tokens (the pre-token trigger removes it for everyone else), which the routes "
                    + ", ".join(r.route_key for r in protected_routes(topology) if ADMIN_SCOPE in r.scopes)
                    + " require."
                )[:2048],
            )
        else:
            self.admin_group = None
        prefix = domain_prefix or f"{Stack.of(self).stack_name.lower()}-{Aws.ACCOUNT_ID}"
        self.domain = self.user_pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=prefix)
        )

    def add_token_trigger(self, function: lambda_.IFunction) -> None:
        """The pre-token-generation trigger (event version 2) that adds the tenant claim to access tokens."""
        self.user_pool.add_trigger(
            cognito.UserPoolOperation.PRE_TOKEN_GENERATION_CONFIG, function, cognito.LambdaVersion.V2_0
        )

    def add_token_verifier(self, function: lambda_.Function) -> None:
        """What a function that verifies the pool's access tokens itself needs: issuer, client ids, JWKS URL."""
        function.add_environment(JWT_ISSUER_ENV, self.issuer)
        function.add_environment(JWT_AUDIENCE_ENV, ",".join(self.audiences))
        function.add_environment(JWKS_URL_ENV, self.jwks_url)

    @property
    def issuer(self) -> str:
        """The `iss` of the pool's tokens: https://cognito-idp.<region>.<URL suffix>/<user pool id>."""
        return f"https://cognito-idp.{Aws.REGION}.{Aws.URL_SUFFIX}/{self.user_pool.user_pool_id}"

    @property
    def jwks_url(self) -> str:
        """Where the pool publishes its token signing keys (public)."""
        return f"{self.issuer}/.well-known/jwks.json"

    @property
    def audiences(self) -> list[str]:
        """The app clients whose access tokens the API accepts (one today): what the verifiers match against a
        token's `client_id` claim (Cognito access tokens have no `aud`)."""
        return [self.client.user_pool_client_id]
