/**
 * Directory routes: `GET /users/{id|upn}`. The product resolves mailboxes through it, so it follows the directory's
 * rules (User.Read.All, Request_ResourceNotFound), not Exchange's.
 */
import type { TenantUser } from '../tenant';
import { project, selectedProperties, type SelectableType } from './odataQuery';
import type { GraphRoute } from './router';

/** Application permissions that can read users. */
export const USER_READ_ROLES: readonly string[] = [
  'User.Read.All',
  'User.ReadWrite.All',
  'Directory.Read.All',
  'Directory.ReadWrite.All',
];

const DEFAULT_PROPERTIES = [
  'businessPhones',
  'displayName',
  'givenName',
  'jobTitle',
  'mail',
  'mobilePhone',
  'officeLocation',
  'preferredLanguage',
  'surname',
  'userPrincipalName',
  'id',
];

/** How `$select` works on users. */
export const USER_TYPE: SelectableType = {
  typeName: 'microsoft.graph.user',
  properties: [
    ...DEFAULT_PROPERTIES,
    'accountEnabled',
    'mailNickname',
    'userType',
    'proxyAddresses',
    'otherMails',
    'department',
    'companyName',
    'usageLocation',
    'createdDateTime',
  ],
  defaults: DEFAULT_PROPERTIES,
  always: [],
  errorCode: 'Request_BadRequest',
};

/** The user as Graph's user resource (properties the tenant does not model are null or empty). */
export function userResource(user: TenantUser): Record<string, unknown> {
  return {
    id: user.id,
    userPrincipalName: user.userPrincipalName,
    mail: user.mail,
    displayName: user.displayName,
    businessPhones: [],
    accountEnabled: true,
    mailNickname: user.mail.split('@')[0],
    userType: 'Member',
    proxyAddresses: [`SMTP:${user.mail}`],
    otherMails: [],
  };
}

/** The directory routes. */
export function userRoutes(): GraphRoute[] {
  return [
    {
      method: 'GET',
      path: '/users/{user}',
      roles: USER_READ_ROLES,
      mailbox: false,
      queryOptions: ['$select'],
      handler: (ctx) => {
        const properties = selectedProperties(ctx.query, USER_TYPE);
        const context = ctx.query.has('$select')
          ? `${ctx.baseUrl}/$metadata#users(${properties.join(',')})/$entity`
          : `${ctx.baseUrl}/$metadata#users/$entity`;
        return ctx.json(200, project(userResource(ctx.user), properties, { '@odata.context': context }));
      },
    },
  ];
}
