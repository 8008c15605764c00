<#
.SYNOPSIS
    Limits the mail gateway's app registration to chosen mailboxes with Exchange Online RBAC for Applications.

.DESCRIPTION
    A Microsoft Graph application permission such as Mail.Send, granted (admin-consented) in Entra ID, reaches
    EVERY mailbox in the tenant. RBAC for Applications in Exchange Online grants the same permission limited to
    a management scope instead. This script:

      1. creates the Exchange Online pointer to the app's service principal (New-ServicePrincipal) if missing;
      2. creates or updates a management scope (New-ManagementScope -RecipientRestrictionFilter) from either a
         recipient filter or the members of a mail-enabled group;
      3. assigns the Exchange application roles the gateway's features need (-Features; by default sending and
         large attachments: "Application Mail.Send" and "Application Mail.ReadWrite") to the app, limited to that
         scope (New-ManagementRoleAssignment -App -CustomResourceScope), or re-points existing assignments;
      4. checks the tenant-wide Entra ID grant of the same permissions (and removes it with
         -RemoveTenantWideGrant);
      5. runs Test-ServicePrincipalAuthorization for an allowed and a disallowed mailbox.

    It is idempotent: run it again with the same arguments and nothing changes. -WhatIf shows what would change
    without changing anything; -Confirm asks before each change.

    IMPORTANT
    * The Entra grant must go. RBAC for Applications ADDS to what Entra ID grants; it never takes away. While
      the app also holds the tenant-wide Entra app role assignment (admin consent) of Mail.Send or
      Mail.ReadWrite, it can still reach every mailbox and the scope has no effect. Remove that grant with
      -RemoveTenantWideGrant (Microsoft Graph PowerShell, Connect-MgGraph -Scopes AppRoleAssignment.ReadWrite.All),
      or revoke the permission in the Entra admin center (Enterprise applications > the app > Permissions).
      Redeploying infra/main.bicep with grantMailPermissionsTenantWide=false does NOT remove it: ARM never deletes
      resources in incremental mode and the Graph Bicep extension is not supported in deployment stacks. Still
      set that parameter to false for every later deployment, or the template grants Mail.* again. Keep
      User.Read.All: it is not a mailbox permission.
    * After that the access token no longer carries Mail.Send / Mail.ReadWrite in its `roles` claim: Exchange
      authorises those calls itself. Only User.Read.All remains in the token.
    * Propagation. Exchange caches application permissions: a new, changed or removed assignment, a change of
      the scope's filter or of the group's membership, and the removal of the Entra grant take effect for real
      Graph calls after 30 minutes to 2 hours. Test-ServicePrincipalAuthorization reads the configuration, so its
      answer can be right before the gateway's calls behave accordingly. Do not conclude it "doesn't work" in
      the first two hours.
    * Groups. MemberOfGroup matches direct members only (nested groups are not expanded). Use a mail-enabled
      security group (or distribution group) and add the mailboxes themselves.
    * This replaces the older Application Access Policies (New-ApplicationAccessPolicy). Do not keep both for
      the same app: they are evaluated separately and the result is hard to reason about.

    Prerequisites: the ExchangeOnlineManagement module (3.x) and a session opened with Connect-ExchangeOnline
    by a member of Organization Management (or an Exchange Administrator). For the Entra grant check/removal:
    the Microsoft.Graph.Applications module and Connect-MgGraph -Scopes 'Application.Read.All',
    'AppRoleAssignment.ReadWrite.All'; without it the script only warns.

.PARAMETER AppId
    Application (client) id of the app registration (ENTRA_CLIENT_ID).

.PARAMETER ObjectId
    Object id of the app's SERVICE PRINCIPAL (Entra admin center > Enterprise applications > the app > Object
    ID; the Bicep output appRegistrationServicePrincipalObjectId). Not the application object's id.

.PARAMETER ScopeName
    Name of the management scope to create or update (also prefixes the role assignment names).

.PARAMETER RecipientFilter
    OPATH recipient filter selecting the mailboxes the app may use, e.g.
    "CustomAttribute1 -eq 'mail-gateway'" or "Department -eq 'Billing'".

.PARAMETER MailEnabledGroup
    Identity (name, alias, SMTP address or distinguished name) of a mail-enabled group whose DIRECT members the
    app may use. Becomes the filter "MemberOfGroup -eq '<group distinguished name>'".

.PARAMETER Features
    The gateway features the app is granted roles for, least privilege (the same rule as infra/main.bicep):
      Send              Application Mail.Send        (POST /api/mail/send)
      LargeAttachments  Application Mail.ReadWrite   (drafts for attachments of 3 MB or more, the outbox lookup)
      Watch             Application Mail.ReadBasic   (subscriptions, metadata, delta; or Mail.Read when granted)
      ReadMail          Application Mail.Read        (message API, content in events; not needed beside ReadWrite)
      MailActions       Application Mail.ReadWrite   (mark, flag, move, delete, reply/forward drafts)
    Default: Send, LargeAttachments. A role no listed feature needs is not assigned (an existing assignment of it
    is left alone: remove it with Remove-ManagementRoleAssignment).

.PARAMETER Roles
    Exchange application roles to assign, instead of deriving them from -Features.

.PARAMETER DisplayName
    Display name of the Exchange service principal pointer when it has to be created.

.PARAMETER AllowedMailbox
    A mailbox that must be IN scope (e.g. alerts@contoso.com); tested with Test-ServicePrincipalAuthorization.

.PARAMETER DisallowedMailbox
    A mailbox that must be OUT of scope (e.g. ceo@contoso.com); tested with Test-ServicePrincipalAuthorization.

.PARAMETER RemoveTenantWideGrant
    Remove the Entra ID app role assignments (admin consent) of the Microsoft Graph permissions matching
    the assigned roles (Mail.Send, Mail.ReadWrite, Mail.Read, Mail.ReadBasic.All / Mail.ReadBasic) from the service
    principal, so that the scope bites. Needs Microsoft
    Graph PowerShell connected with AppRoleAssignment.ReadWrite.All. This is the only step that revokes the grant:
    redeploying infra/main.bicep with grantMailPermissionsTenantWide=false does not (ARM never deletes resources in
    incremental mode); that parameter only keeps later deployments from granting it again.

.EXAMPLE
    Connect-ExchangeOnline -UserPrincipalName admin@contoso.com
    ./infra/Set-MailboxScope.ps1 -AppId 11111111-2222-3333-4444-555555555555 `
        -ObjectId 66666666-7777-8888-9999-000000000000 -ScopeName 'Mail gateway mailboxes' `
        -MailEnabledGroup 'mail-gateway-senders@contoso.com' `
        -AllowedMailbox alerts@contoso.com -DisallowedMailbox ceo@contoso.com -WhatIf

.EXAMPLE
    # A helpdesk deployment: send, watch, read and answer support@ (Mail.Send, Mail.ReadWrite, Mail.ReadBasic).
    ./infra/Set-MailboxScope.ps1 -AppId 11111111-2222-3333-4444-555555555555 `
        -ObjectId 66666666-7777-8888-9999-000000000000 -ScopeName 'Mail gateway helpdesk' `
        -MailEnabledGroup 'mail-gateway-helpdesk@contoso.com' `
        -Features Send, LargeAttachments, Watch, ReadMail, MailActions -AllowedMailbox support@contoso.com

.EXAMPLE
    ./infra/Set-MailboxScope.ps1 -AppId 11111111-2222-3333-4444-555555555555 `
        -ObjectId 66666666-7777-8888-9999-000000000000 -ScopeName 'Mail gateway mailboxes' `
        -RecipientFilter "CustomAttribute1 -eq 'mail-gateway'" -RemoveTenantWideGrant `
        -AllowedMailbox alerts@contoso.com -DisallowedMailbox ceo@contoso.com
#>
[CmdletBinding(SupportsShouldProcess = $true, ConfirmImpact = 'Medium', DefaultParameterSetName = 'Group')]
param(
    [Parameter(Mandatory = $true)]
    [ValidatePattern('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')]
    [string] $AppId,

    [Parameter(Mandatory = $true)]
    [Alias('ServicePrincipalObjectId')]
    [ValidatePattern('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')]
    [string] $ObjectId,

    [Parameter(Mandatory = $true)]
    [ValidateLength(1, 64)]
    [string] $ScopeName,

    [Parameter(Mandatory = $true, ParameterSetName = 'Filter')]
    [ValidateNotNullOrEmpty()]
    [string] $RecipientFilter,

    [Parameter(Mandatory = $true, ParameterSetName = 'Group')]
    [ValidateNotNullOrEmpty()]
    [string] $MailEnabledGroup,

    [ValidateSet('Send', 'LargeAttachments', 'Watch', 'ReadMail', 'MailActions')]
    [string[]] $Features = @('Send', 'LargeAttachments'),

    [ValidateSet('Application Mail.Send', 'Application Mail.ReadWrite', 'Application Mail.Read', 'Application Mail.ReadBasic')]
    [string[]] $Roles,

    [ValidateNotNullOrEmpty()]
    [string] $DisplayName = 'Mail gateway',

    [string] $AllowedMailbox,

    [string] $DisallowedMailbox,

    [switch] $RemoveTenantWideGrant
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

# Microsoft Graph (the resource) and the app roles behind the Exchange application roles. Ids are the same in
# every tenant.
$GraphAppId = '00000003-0000-0000-c000-000000000000'
$GraphRoleIds = @{
    'Application Mail.Send'      = @('b633e1c5-b582-4048-a93e-9f11b44c7e96') # Mail.Send (application)
    'Application Mail.ReadWrite' = @('e2a3a72e-5f79-4c64-b1b1-878b674786c9') # Mail.ReadWrite (application)
    'Application Mail.Read'      = @('810c84a8-4a9e-49e6-bf7d-12d183f40d01') # Mail.Read (application)
    # Mail.ReadBasic.All and Mail.ReadBasic (application): either tenant-wide grant defeats the scope.
    'Application Mail.ReadBasic' = @('693c5e45-0940-467d-9b8a-1022fb9d42ef', '6be147d2-ea4f-4b5a-a3fa-3eab6f3c140a')
}

# The roles the features need, least privilege: Mail.ReadWrite reads whole messages, so reading needs no Mail.Read
# beside it; a subscription needs a read scope, which Mail.ReadWrite is not, so watching takes Mail.Read when it is
# assigned anyway, else the narrower Mail.ReadBasic.
if (-not $PSBoundParameters.ContainsKey('Roles')) {
    $needsReadWrite = ($Features -contains 'LargeAttachments') -or ($Features -contains 'MailActions')
    $needsRead = ($Features -contains 'ReadMail') -and -not $needsReadWrite
    $Roles = @()
    if ($Features -contains 'Send') { $Roles += 'Application Mail.Send' }
    if ($needsReadWrite) { $Roles += 'Application Mail.ReadWrite' }
    if ($needsRead) { $Roles += 'Application Mail.Read' }
    if (($Features -contains 'Watch') -and -not $needsRead) { $Roles += 'Application Mail.ReadBasic' }
}
if ($Roles.Count -eq 0) { throw 'No role to assign: name at least one feature (-Features) or role (-Roles).' }
Write-Verbose ("Roles to assign: {0}." -f ($Roles -join ', '))

# Reads a property that may not exist on an object returned by a remote cmdlet (StrictMode-safe).
function Get-OptionalProperty {
    param([object] $InputObject, [string] $Name)
    if ($null -eq $InputObject) { return $null }
    $property = $InputObject.PSObject.Properties[$Name]
    if ($null -eq $property) { return $null }
    return $property.Value
}

# Looks an object up; $null when it does not exist (the Exchange cmdlets report "not found" as an error).
function Find-Object {
    param([scriptblock] $Lookup)
    try { return (& $Lookup) } catch { return $null }
}

# Role assignment names are limited to 64 characters.
function Get-AssignmentName {
    param([string] $Scope, [string] $Role)
    $name = '{0} - {1}' -f $Scope, ($Role -replace '^Application ', '')
    if ($name.Length -gt 64) { $name = $name.Substring(0, 64).TrimEnd() }
    return $name
}

# --- 0. Exchange Online session -----------------------------------------------------------------------------
foreach ($command in 'Get-ServicePrincipal', 'New-ManagementScope', 'New-ManagementRoleAssignment', 'Test-ServicePrincipalAuthorization') {
    if (-not (Get-Command -Name $command -ErrorAction SilentlyContinue)) {
        throw "The Exchange Online cmdlet $command is not available. Install-Module ExchangeOnlineManagement, then Connect-ExchangeOnline -UserPrincipalName <admin> (Organization Management / Exchange Administrator) and run this script again."
    }
}

$changes = New-Object System.Collections.Generic.List[string]

# --- 1. Service principal pointer in Exchange Online ---------------------------------------------------------
$servicePrincipal = Find-Object { Get-ServicePrincipal -Identity $ObjectId -ErrorAction Stop }
if ($null -eq $servicePrincipal) {
    $servicePrincipal = Find-Object {
        Get-ServicePrincipal -ErrorAction Stop |
            Where-Object { (Get-OptionalProperty $_ 'AppId') -eq $AppId } |
            Select-Object -First 1
    }
}
if ($null -ne $servicePrincipal) {
    $existingAppId = Get-OptionalProperty $servicePrincipal 'AppId'
    $existingObjectId = Get-OptionalProperty $servicePrincipal 'ObjectId'
    if ($existingAppId -and $existingAppId -ne $AppId) {
        throw "Exchange service principal $ObjectId belongs to AppId $existingAppId, not $AppId. Check -ObjectId: it must be the object id of the app's service principal (Enterprise application)."
    }
    if ($existingObjectId -and $existingObjectId -ne $ObjectId) {
        throw "An Exchange service principal for AppId $AppId exists with ObjectId $existingObjectId, not $ObjectId. Check -ObjectId (the SERVICE PRINCIPAL's object id, not the application object's)."
    }
    Write-Verbose "Exchange service principal for $AppId already exists."
}
elseif ($PSCmdlet.ShouldProcess("AppId $AppId, ObjectId $ObjectId", 'New-ServicePrincipal')) {
    $servicePrincipal = New-ServicePrincipal -AppId $AppId -ObjectId $ObjectId -DisplayName $DisplayName -Confirm:$false
    $changes.Add("created the Exchange service principal for $AppId")
}

# --- 2. Management scope -------------------------------------------------------------------------------------
if ($PSCmdlet.ParameterSetName -eq 'Group') {
    $group = Get-Recipient -Identity $MailEnabledGroup -ErrorAction Stop
    $recipientType = [string](Get-OptionalProperty $group 'RecipientType')
    if ($recipientType -notlike '*Group*' -or $recipientType -eq 'DynamicDistributionGroup') {
        throw "$MailEnabledGroup is a $recipientType, not a mail-enabled group with static members. Pass a mail-enabled security group or distribution group, or use -RecipientFilter."
    }
    $groupDn = [string](Get-OptionalProperty $group 'DistinguishedName')
    if (-not $groupDn) { throw "Could not read the distinguished name of $MailEnabledGroup." }
    # OPATH string literals are single-quoted; a quote inside is doubled.
    $filter = "MemberOfGroup -eq '{0}'" -f ($groupDn -replace "'", "''")
}
else {
    $filter = $RecipientFilter
}

$scope = Find-Object { Get-ManagementScope -Identity $ScopeName -ErrorAction Stop }
if ($null -eq $scope) {
    if ($PSCmdlet.ShouldProcess($ScopeName, "New-ManagementScope -RecipientRestrictionFilter `"$filter`"")) {
        New-ManagementScope -Name $ScopeName -RecipientRestrictionFilter $filter -Confirm:$false | Out-Null
        $changes.Add("created management scope '$ScopeName'")
    }
}
else {
    $currentFilter = [string](Get-OptionalProperty $scope 'RecipientFilter')
    if ($currentFilter -ne $filter) {
        # Exchange may store the filter normalised (extra parentheses); rewriting an equivalent filter is harmless.
        if ($PSCmdlet.ShouldProcess($ScopeName, "Set-ManagementScope -RecipientRestrictionFilter `"$filter`" (was `"$currentFilter`")")) {
            Set-ManagementScope -Identity $ScopeName -RecipientRestrictionFilter $filter -Confirm:$false
            $changes.Add("updated the filter of management scope '$ScopeName'")
        }
    }
    else {
        Write-Verbose "Management scope '$ScopeName' already has the filter $filter."
    }
}

# --- 3. Role assignments limited to the scope -------------------------------------------------------------------
foreach ($role in $Roles) {
    $assignmentName = Get-AssignmentName -Scope $ScopeName -Role $role
    $assignment = Find-Object { Get-ManagementRoleAssignment -Identity $assignmentName -ErrorAction Stop }
    if ($null -eq $assignment) {
        if ($PSCmdlet.ShouldProcess($assignmentName, "New-ManagementRoleAssignment -App $ObjectId -Role '$role' -CustomResourceScope '$ScopeName'")) {
            New-ManagementRoleAssignment -Name $assignmentName -App $ObjectId -Role $role -CustomResourceScope $ScopeName -Confirm:$false | Out-Null
            $changes.Add("assigned '$role' limited to '$ScopeName'")
        }
        continue
    }
    $assignedScope = [string](Get-OptionalProperty $assignment 'CustomResourceScope')
    if ($assignedScope -and $assignedScope -ne $ScopeName) {
        if ($PSCmdlet.ShouldProcess($assignmentName, "Set-ManagementRoleAssignment -CustomResourceScope '$ScopeName' (was '$assignedScope')")) {
            Set-ManagementRoleAssignment -Identity $assignmentName -CustomResourceScope $ScopeName -Confirm:$false
            $changes.Add("re-pointed '$assignmentName' to '$ScopeName'")
        }
    }
    else {
        Write-Verbose "Role assignment '$assignmentName' already exists."
    }
}

# --- 4. The tenant-wide Entra ID grant of the same permissions ---------------------------------------------------
# RBAC for Applications adds to Entra consent. While the service principal holds the Entra app role assignment of
# Mail.Send / Mail.ReadWrite on Microsoft Graph, the app reaches every mailbox and the scope above has no effect.
$scopedGraphRoleIds = @($Roles | ForEach-Object { $GraphRoleIds[$_] } | ForEach-Object { $_ })
$graphReady = (Get-Command -Name Get-MgServicePrincipalAppRoleAssignment -ErrorAction SilentlyContinue) -and
    (Get-Command -Name Get-MgContext -ErrorAction SilentlyContinue) -and
    ($null -ne (Get-MgContext))
if ($graphReady) {
    $graphServicePrincipal = Get-MgServicePrincipal -Filter "appId eq '$GraphAppId'" | Select-Object -First 1
    if ($null -eq $graphServicePrincipal) { throw 'The Microsoft Graph service principal was not found in this tenant.' }
    $tenantWideGrants = @(
        Get-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $ObjectId -All |
            Where-Object { $_.ResourceId -eq $graphServicePrincipal.Id -and $scopedGraphRoleIds -contains $_.AppRoleId }
    )
    foreach ($grant in $tenantWideGrants) {
        $permission = ($GraphRoleIds.GetEnumerator() | Where-Object { $_.Value -contains $grant.AppRoleId } | Select-Object -First 1).Key -replace '^Application ', ''
        if ($RemoveTenantWideGrant) {
            if ($PSCmdlet.ShouldProcess("service principal $ObjectId", "Remove the tenant-wide Entra grant of Microsoft Graph $permission")) {
                Remove-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $ObjectId -AppRoleAssignmentId $grant.Id -Confirm:$false
                $changes.Add("removed the tenant-wide Entra grant of $permission")
            }
        }
        else {
            # Redeploying infra/main.bicep with grantMailPermissionsTenantWide=false does not remove it: ARM never deletes
            # in incremental mode, and the Graph Bicep extension cannot run in a deployment stack.
            Write-Warning "The app still holds the tenant-wide Entra grant of Microsoft Graph ${permission}: it reaches EVERY mailbox and the scope '$ScopeName' has no effect. Run this script again with -RemoveTenantWideGrant (redeploying infra/main.bicep with grantMailPermissionsTenantWide=false does NOT remove it; it only stops the template from granting it again)."
        }
    }
    if ($tenantWideGrants.Count -eq 0) {
        Write-Verbose 'No tenant-wide Entra grant of the scoped Microsoft Graph permissions: the scope applies.'
    }
}
else {
    Write-Warning ('Could not check Entra ID (Microsoft Graph PowerShell not connected). Make sure the service principal no longer holds the tenant-wide admin consent of Mail.Send / Mail.ReadWrite; while it does, the app reaches every mailbox. ' +
        "Connect-MgGraph -Scopes 'Application.Read.All','AppRoleAssignment.ReadWrite.All' and run again to check (add -RemoveTenantWideGrant to remove it).")
}

# --- 5. Test the configuration ---------------------------------------------------------------------------------
$failures = New-Object System.Collections.Generic.List[string]

function Test-Mailbox {
    param([string] $Mailbox, [bool] $ExpectInScope)
    # Read-only; runs under -WhatIf too (then it shows the configuration as it is, without the skipped changes).
    try {
        $results = @(Test-ServicePrincipalAuthorization -Identity $ObjectId -Resource $Mailbox -WhatIf:$false -ErrorAction Stop)
    }
    catch {
        $failures.Add(("{0}: Test-ServicePrincipalAuthorization failed: {1}" -f $Mailbox, $_.Exception.Message))
        return
    }
    foreach ($role in $Roles) {
        $row = $results | Where-Object { (Get-OptionalProperty $_ 'RoleName') -eq $role } | Select-Object -First 1
        # InScope comes back as a bool (or its text); a role missing from the answer is not in scope.
        $inScope = ([string](Get-OptionalProperty $row 'InScope')) -eq 'True'
        $verdict = if ($inScope -eq $ExpectInScope) { 'ok' } else { 'UNEXPECTED' }
        [pscustomobject]@{
            Mailbox  = $Mailbox
            Role     = $role
            InScope  = $inScope
            Expected = $ExpectInScope
            Result   = $verdict
        }
        if ($inScope -ne $ExpectInScope) {
            $failures.Add(("{0}: '{1}' InScope={2}, expected {3}" -f $Mailbox, $role, $inScope, $ExpectInScope))
        }
    }
}

$testRows = @()
if ($AllowedMailbox) { $testRows += @(Test-Mailbox -Mailbox $AllowedMailbox -ExpectInScope $true) }
if ($DisallowedMailbox) { $testRows += @(Test-Mailbox -Mailbox $DisallowedMailbox -ExpectInScope $false) }
if ($testRows.Count -gt 0) {
    $testRows | Format-Table -AutoSize | Out-String | Write-Host
}
else {
    Write-Warning 'No -AllowedMailbox / -DisallowedMailbox given: the scope was not tested. Run Test-ServicePrincipalAuthorization -Identity <ObjectId> -Resource <mailbox> yourself.'
}

if ($changes.Count -gt 0) {
    Write-Host ('Changes: ' + ($changes -join '; ') + '.')
    Write-Host 'Exchange caches application permissions: the gateway''s Graph calls follow these changes after 30 minutes to 2 hours.'
}
elseif (-not $WhatIfPreference) {
    Write-Host 'Nothing to change: the scope and role assignments were already in place.'
}

if ($failures.Count -gt 0) {
    $message = "Test-ServicePrincipalAuthorization disagrees with the intended scope: $($failures -join '; ')."
    if ($WhatIfPreference) {
        Write-Warning "$message (-WhatIf: the changes above were not made.)"
    }
    else {
        throw "$message Check the filter / group membership (direct members only) and that the mailbox identity is right."
    }
}
