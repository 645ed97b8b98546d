// Code generated as a temporary bridge during the driver-package move. DO NOT KEEP.

package syncguard

import "github.com/syncguard/syncguard/driver"

const FenceEpochMs = driver.FenceEpochMs
const FencePerMs = driver.FencePerMs
const FenceMarginMs = driver.FenceMarginMs

var FenceFloor = driver.FenceFloor
var FenceKeepMs = driver.FenceKeepMs

const FenceDigits = driver.FenceDigits
const FenceMax = driver.FenceMax
const FenceWarn = driver.FenceWarn

var FormatFence = driver.FormatFence
var ParseFence = driver.ParseFence
var CheckNewFence = driver.CheckNewFence

const MaxKeyBytes = driver.MaxKeyBytes

var NormalizeKey = driver.NormalizeKey
var StorageKey = driver.StorageKey
var HashedKey = driver.HashedKey
var HashKey = driver.HashKey

const Tolerance = driver.Tolerance
const ToleranceMs = driver.ToleranceMs
const CleanupGuardMs = driver.CleanupGuardMs
const DefaultTTL = driver.DefaultTTL

var IsLive = driver.IsLive
var TTLMillis = driver.TTLMillis
var UnixMs = driver.UnixMs
var ValidateRateLimit = driver.ValidateRateLimit
var RecordTTLMillis = driver.RecordTTLMillis

const LockIDLen = driver.LockIDLen

var NewLockID = driver.NewLockID
var ValidLockID = driver.ValidLockID
var ValidateLockID = driver.ValidateLockID
var PollingHandoff = driver.PollingHandoff

type Capabilities = driver.Capabilities
type WithFencing = driver.WithFencing
type WithServerTime = driver.WithServerTime
type WithFairHandoff = driver.WithFairHandoff
type WithCrossProcess = driver.WithCrossProcess
type Info = driver.Info

var Describe = driver.Describe

type LockStore = driver.LockStore
type RecordStore = driver.RecordStore
type RateStore = driver.RateStore
type Backend = driver.Backend
type Driver[C Capabilities] = driver.Driver[C]
type ReleaseWatcher = driver.ReleaseWatcher
type HandoffWatcher = driver.HandoffWatcher
type Handoff = driver.Handoff
type AcquireResult = driver.AcquireResult

const ReasonLocked = driver.ReasonLocked
const DetailExpired = driver.DetailExpired
const DetailNotFound = driver.DetailNotFound

type ReleaseResult = driver.ReleaseResult
type ExtendResult = driver.ExtendResult
type PutResult = driver.PutResult
type Record = driver.Record
type Code = driver.Code

const ServiceUnavailable = driver.ServiceUnavailable
const AuthFailed = driver.AuthFailed
const InvalidArgument = driver.InvalidArgument
const RateLimited = driver.RateLimited
const NetworkTimeout = driver.NetworkTimeout
const AcquisitionTimeout = driver.AcquisitionTimeout
const Aborted = driver.Aborted
const Internal = driver.Internal

var NewError = driver.NewError
var CodeOf = driver.CodeOf
var ContextError = driver.ContextError
var CheckContext = driver.CheckContext
