import { DEFAULT_TIMEOUT_SECONDS } from './args';
import { DEFAULT_DEV_EMAIL, DEFAULT_SIGNIN_SCOPES } from './local-google';

/** The text `tokenbroker --help` prints. */
export const USAGE = `Usage: tokenbroker <command> [options]
       (in this repository: npm run cli -- <command> [options])

Commands:
  exchange --code CODE [--redirect-uri URI]
      Exchange a one-time Google server auth code (ExchangeCode) and print the
      user_id, whether the user is new, the granted scopes and the profile.
      The code is never printed.
  token --user USER_ID [--scope SCOPE]... [--min-ttl SECONDS]
      Get a Google access token for the user (GetAccessToken): the token, its
      expiry and its scopes. --scope narrows it to granted scopes; --min-ttl is
      how long it must stay valid (default: the server's, 300 unless configured).
  profile --user USER_ID
      Print the user's stored profile (GetProfile).
  status --user USER_ID
      Whether the user's grant still works (GetGrantStatus): ACTIVE or
      REAUTH_REQUIRED with Google's reason, its scopes, when it was created,
      last signed in and last refreshed. Never a token.
  revoke --user USER_ID
      Sign the user out for good (RevokeUser): revoke the grant at Google and
      delete what is stored. google_revocation PENDING means Google was not
      reached; the retry-revocations job finishes it. Revoking an unknown user
      succeeds with was_stored false.
  health [--service NAME]
      Ask grpc.health.v1 for the status of NAME (default: the whole server).
  dev-signin [--email E] [--name N] [--sub SUB] [--scope S]... [--consent] [--oauth-url URL]
      LOCAL DEVELOPMENT ONLY. Sign a test user in at the dev stack's local
      stand-in for Google, then exchange the code like \`exchange\`.
      --email     default ${DEFAULT_DEV_EMAIL}
      --name      default derived from the email (ann.lee@... is "Ann Lee")
      --sub       Google account ID; default derived from the email, so the
                  same email always signs in the same user
      --scope     default: ${DEFAULT_SIGNIN_SCOPES.join(' ')}
      --consent   act as if the consent screen was shown (yields a refresh
                  token even for a returning user)
      --oauth-url the local Google's URL; default: the running dev stack's
                  (.dev/stack.json). Only 127.0.0.1, localhost or [::1].

Global options:
  --address HOST:PORT  the broker; default $TOKENBROKER_ADDRESS, else the
                       running dev stack's (.dev/stack.json), else 127.0.0.1:8080
  --json               print one JSON object on stdout (snake_case field names);
                       errors too: {"error":{"code","reason","message"}}
  --timeout SECONDS    give up after this long (default ${DEFAULT_TIMEOUT_SECONDS})

Caller credentials (what the broker's TOKENBROKER_CALLER_AUTH expects):
  --id-token-audience AUD  send a Google ID token for audience AUD (the broker's
                           TOKENBROKER_CALLER_AUDIENCE), minted for this machine's
                           service account by google-auth-library (metadata
                           server on GCP, else Application Default Credentials)
  --id-token-file FILE     send the ID token held in FILE
  --tls                    connect over TLS, trusting the system's CAs
  --tls-ca FILE            connect over TLS, trusting the CA certificate(s) in FILE
  --tls-cert FILE --tls-key FILE
                           present this client certificate (mutual TLS)
  Tokens and keys are never printed. health sends no ID token.
  -h, --help           print this help

Environment:
  TOKENBROKER_ADDRESS  default --address
  TOKENBROKER_DEV_DIR  where the dev stack keeps its files (default ./.dev)
  TOKENBROKER_ID_TOKEN a ready ID token, used when no --id-token-* option is given

Exit codes:
  0  success (health: SERVING)
  1  the service answered with an error (e.g. "NOT_FOUND USER_NOT_FOUND: ..."),
     or health is not SERVING
  2  usage error: unknown command or option, missing option, bad value
  3  cannot connect, no answer within --timeout, or no ID token could be
     minted for --id-token-audience
`;
