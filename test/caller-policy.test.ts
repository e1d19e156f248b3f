import { expect } from 'chai';
import { CallerPolicy, PolicyError } from '../src/auth/caller-policy';

const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';
const GMAIL = 'https://www.googleapis.com/auth/gmail.readonly';

describe('CallerPolicy', () => {
  const policy = CallerPolicy.parse(
    `
callers:
  gateway@p.iam.gserviceaccount.com:
    rpcs: [ExchangeCode, GetProfile]
  spiffe://cluster.local/ns/photos/sa/photos:
    rpcs: [GetAccessToken]
    scopes: [${GMAIL}, ${DRIVE}, ${DRIVE}]
`,
    'policy.yaml',
  );

  it('grants exactly the listed RPCs to exactly the listed identities', () => {
    expect(policy.permits('gateway@p.iam.gserviceaccount.com', 'ExchangeCode')).to.equal(true);
    expect(policy.permits('gateway@p.iam.gserviceaccount.com', 'GetAccessToken')).to.equal(false);
    expect(policy.permits('spiffe://cluster.local/ns/photos/sa/photos', 'GetAccessToken')).to.equal(true);
    expect(policy.permits('spiffe://cluster.local/ns/photos/sa/photo', 'GetAccessToken')).to.equal(false);
    expect(policy.permits('GATEWAY@p.iam.gserviceaccount.com', 'ExchangeCode')).to.equal(false);
  });

  it('lists allowed scopes sorted and once, and names the forbidden ones', () => {
    expect(policy.scopesFor('spiffe://cluster.local/ns/photos/sa/photos')).to.deep.equal([DRIVE, GMAIL]);
    expect(policy.scopesFor('gateway@p.iam.gserviceaccount.com')).to.deep.equal([]);
    expect(policy.forbiddenScopes('spiffe://cluster.local/ns/photos/sa/photos', [DRIVE, 'openid'])).to.deep.equal(['openid']);
    expect(policy.forbiddenScopes('nobody', [DRIVE])).to.deep.equal([DRIVE]);
  });

  it('reads JSON as well', () => {
    const json = CallerPolicy.parse(JSON.stringify({ callers: { 'a@p.iam.gserviceaccount.com': { rpcs: ['GetProfile'] } } }), 'policy.json');
    expect(json.permits('a@p.iam.gserviceaccount.com', 'GetProfile')).to.equal(true);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['not YAML', 'callers: [unclosed', /not valid YAML or JSON/],
    ['not a mapping', '- a\n- b', /must be a mapping with a `callers` key/],
    ['an unknown top-level key', 'callers: {a: {rpcs: [GetProfile]}}\nextra: 1', /key `extra` is not known/],
    ['no callers', 'callers: {}', /`callers` must map at least one/],
    ['a duplicate identity', 'callers:\n  a: {rpcs: [GetProfile]}\n  a: {rpcs: [ExchangeCode]}', /not valid YAML or JSON/],
    ['an identity with spaces', 'callers: {"a b": {rpcs: [GetProfile]}}', /callers\["a b"\] must name an identity without spaces/],
    ['an unknown field', 'callers: {a: {rpcs: [GetProfile], scope: [x]}}', /callers\["a"\]\.scope is not known/],
    ['no rpcs', 'callers: {a: {rpcs: []}}', /callers\["a"\]\.rpcs must list at least one/],
    ['an unknown rpc', 'callers: {a: {rpcs: [GetEverything]}}', /names `GetEverything`/],
    ['GetAccessToken without scopes', 'callers: {a: {rpcs: [GetAccessToken]}}', /scopes must list the scopes/],
    ['scopes without GetAccessToken', `callers: {a: {rpcs: [GetProfile], scopes: [${DRIVE}]}}`, /only meaningful with GetAccessToken/],
    ['a scope with a space', 'callers: {a: {rpcs: [GetAccessToken], scopes: ["a b"]}}', /scopes must be a list of scopes without spaces/],
  ];
  for (const [what, text, message] of bad) {
    it(`refuses ${what}, naming the file and the entry`, () => {
      expect(() => CallerPolicy.parse(text, '/etc/tokenbroker/policy.yaml'))
        .to.throw(PolicyError)
        .with.property('message')
        .that.matches(/^\/etc\/tokenbroker\/policy\.yaml: /)
        .and.matches(message);
    });
  }
});
