// Optional: the Entra ID app registration the gateway signs in as, created with the Microsoft Graph Bicep
// extension (alias microsoftGraphV1 in infra/bicepconfig.json; needs Bicep CLI 0.36.1 or later).
//
// - application with a certificate key credential (public part only; the private key stays in Key Vault),
// - its service principal,
// - app role assignments on the Microsoft Graph service principal. An application permission's app role
//   assignment IS its admin consent: once these exist the token's `roles` claim carries them.
//
// The deploying identity needs, in Entra ID, to create applications (Application Administrator or Cloud
// Application Administrator) and to grant Microsoft Graph app roles (Privileged Role Administrator or Global
// Administrator); a service principal needs Application.ReadWrite.All + AppRoleAssignment.ReadWrite.All.

extension microsoftGraphV1

@description('Immutable alternate key of the application in Entra ID; redeploying with the same value updates the same app.')
param uniqueName string

@description('Display name of the application.')
param displayName string

@description('Base64 (DER) of the public X.509 certificate the app authenticates with, e.g. `openssl x509 -in cert.pem -outform der | base64 -w0`. Empty: no key credential (add one later).')
param certificateBase64 string = ''

@description('Start of validity of certificateBase64 (ISO 8601, the certificate\'s notBefore, e.g. `az keyvault certificate show --query attributes.notBefore`). Empty: Entra takes it from the certificate.')
param certificateStartDateTime string = ''

@description('End of validity of certificateBase64 (ISO 8601, the certificate\'s notAfter: `--query attributes.expires`). Empty: Entra takes it from the certificate.')
param certificateEndDateTime string = ''

@description('Base64 (DER) of a second certificate kept valid during a rotation (the previous one). Empty once the rotation is over.')
param previousCertificateBase64 string = ''

@description('Start of validity of previousCertificateBase64 (ISO 8601). Empty: Entra takes it from the certificate.')
param previousCertificateStartDateTime string = ''

@description('End of validity of previousCertificateBase64 (ISO 8601). Empty: Entra takes it from the certificate.')
param previousCertificateEndDateTime string = ''

@description('True: declare and grant the Mail.* permissions the features below need tenant-wide in Entra ID (admin consent). False: declare and grant only User.Read.All and authorise mail through Exchange Online RBAC for Applications (infra/Set-MailboxScope.ps1). Turning this off does NOT revoke a grant an earlier deployment made (ARM never deletes in incremental mode): run Set-MailboxScope.ps1 -RemoveTenantWideGrant.')
param grantMailPermissionsTenantWide bool = true

@description('Large attachments (3 MB or more, sent through a draft) and the outbox lookup of an interrupted send: Mail.ReadWrite.')
param featureLargeAttachments bool = true

@description('Watching mailboxes (subscriptions, message metadata, delta): Mail.ReadBasic.All, or the Mail.Read reading is granted anyway.')
param featureWatch bool = false

@description('Reading bodies, attachments and MIME (the message API, content in events): Mail.Read, unless Mail.ReadWrite is granted anyway (it reads whole messages too).')
param featureReadMail bool = false

@description('Acting on messages (mark, flag, move, delete) and reply/forward drafts: Mail.ReadWrite.')
param featureMailActions bool = false

// Microsoft Graph and its application permissions (app role ids are the same in every tenant).
var graphAppId = '00000003-0000-0000-c000-000000000000'
var mailSendRoleId = 'b633e1c5-b582-4048-a93e-9f11b44c7e96' // Mail.Send (application)
var mailReadWriteRoleId = 'e2a3a72e-5f79-4c64-b1b1-878b674786c9' // Mail.ReadWrite (application)
var mailReadRoleId = '810c84a8-4a9e-49e6-bf7d-12d183f40d01' // Mail.Read (application)
var mailReadBasicAllRoleId = '693c5e45-0940-467d-9b8a-1022fb9d42ef' // Mail.ReadBasic.All (application)
var userReadAllRoleId = 'df021288-bdef-4463-88db-98f22de89214' // User.Read.All (application)

// Least privilege: each Mail.* permission only when a feature that is on needs it (shared/identity/graphPermissions.ts
// FEATURE_PERMISSIONS). Mail.ReadWrite reads whole messages, so reading needs no Mail.Read beside it; a subscription
// needs a read scope, which Mail.ReadWrite is not, so watching takes the Mail.Read granted for reading, else the
// narrower Mail.ReadBasic.All.
var needsMailReadWrite = featureLargeAttachments || featureMailActions
var needsMailRead = featureReadMail && !needsMailReadWrite
var needsMailReadBasic = featureWatch && !needsMailRead

// What the app declares it needs (the portal's "API permissions" view) and what is granted (admin consent) are the
// same list. When Exchange RBAC for Applications scopes the mail permissions, Mail.* is left out of both: declared,
// it would show as "not granted" and invite an admin to press "Grant admin consent", which re-opens every mailbox.
var mailRoleIds = concat(
  [
    mailSendRoleId
  ],
  needsMailReadWrite ? [mailReadWriteRoleId] : [],
  needsMailRead ? [mailReadRoleId] : [],
  needsMailReadBasic ? [mailReadBasicAllRoleId] : []
)
var grantedRoleIds = concat(grantMailPermissionsTenantWide ? mailRoleIds : [], [
  userReadAllRoleId
])

// Explicit validity dates keep the key credential's lifetime visible in the template and in Entra. A date left
// empty is left out of the key credential altogether (not sent as null): Entra then reads it from the certificate.
var certificateCandidates = [
  {
    key: certificateBase64
    startDateTime: certificateStartDateTime
    endDateTime: certificateEndDateTime
  }
  {
    key: previousCertificateBase64
    startDateTime: previousCertificateStartDateTime
    endDateTime: previousCertificateEndDateTime
  }
]
var certificates = filter(certificateCandidates, cert => !empty(cert.key))

resource application 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  description: 'Microsoft 365 mail gateway (Azure Functions): sends as permitted mailboxes, watches and reads mailboxes through Microsoft Graph with the application permissions its features need.'
  signInAudience: 'AzureADMyOrg'
  keyCredentials: map(certificates, cert => union({
    keyId: guid(uniqueName, cert.key)
    displayName: 'mail-gateway certificate'
    type: 'AsymmetricX509Cert'
    usage: 'Verify'
    key: cert.key
  }, empty(cert.startDateTime) ? {} : {
    startDateTime: cert.startDateTime
  }, empty(cert.endDateTime) ? {} : {
    endDateTime: cert.endDateTime
  }))
  requiredResourceAccess: [
    {
      resourceAppId: graphAppId
      resourceAccess: map(grantedRoleIds, roleId => {
        id: roleId
        type: 'Role'
      })
    }
  ]
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: application.appId
}

resource graphServicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: graphAppId
}

resource graphRoleGrants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for roleId in grantedRoleIds: {
    appRoleId: roleId
    principalId: servicePrincipal.id
    resourceId: graphServicePrincipal.id
  }
]

@description('Application (client) id: ENTRA_CLIENT_ID.')
output appId string = application.appId

@description('Object id of the application object.')
output applicationObjectId string = application.id

@description('Object id of the service principal (Enterprise application): the -ObjectId of infra/Set-MailboxScope.ps1.')
output servicePrincipalObjectId string = servicePrincipal.id
